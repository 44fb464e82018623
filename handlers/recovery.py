"""Turns a crash cut short: their users are told to ask again.

A killed process leaves its update claims ``processing`` (see ``DedupMiddleware``). Channels
rarely redeliver such an update: Telegram's long polling has confirmed it already and webhooks
were answered at once. So after start-up, and periodically, claims whose holder has exited (or
whose lease ran out) are marked ``abandoned`` (once, across processes) and their chat gets a
short apology. A redelivery that comes anyway is still answered.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol

from billing.holders import is_dead_local_holder
from core.clock import Clock
from storage.db import Sessions
from storage.repositories.updates import UpdateClaimRepository

log = logging.getLogger(__name__)

ASK_AGAIN = (
    "Sorry, I was interrupted before I could answer your last message. Please send it again."
)


class Notifier(Protocol):
    """A channel that can write into a chat it once received a message from."""

    async def notify(self, address: Mapping[str, Any], text: str) -> None: ...


class InterruptedTurns:
    def __init__(
        self,
        sessions: Sessions,
        clock: Clock,
        *,
        grace: timedelta = timedelta(seconds=10),
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        #: A claim younger than this is left alone: its update may still be redelivered.
        self._grace = grace

    async def sweep(self, notifiers: Mapping[str, Notifier]) -> int:
        """Tell the chats of cut-short turns to ask again; returns how many were told."""
        now = self._clock()
        async with self._sessions() as session:
            claims = await UpdateClaimRepository(session).interrupted(now - self._grace)
        told = 0
        for claim in claims:
            expired = claim.lease_expires_at is not None and claim.lease_expires_at <= now
            if not (expired or is_dead_local_holder(claim.holder)):
                continue  # still being answered by a live process
            notifier = notifiers.get(claim.channel)
            if notifier is None or not claim.reply_to:
                continue  # a channel this process does not serve: its own processes will tell
            async with self._sessions.begin() as session:
                if not await UpdateClaimRepository(session).abandon(claim):
                    continue  # another process took it
            try:
                await notifier.notify(claim.reply_to, ASK_AGAIN)
            except Exception:
                log.warning("could not tell %s chat about an interrupted turn", claim.channel)
                continue
            log.warning("told %s chat %s to ask again", claim.channel, claim.reply_to["chat_key"])
            told += 1
        return told
