"""Turns a crash cut short: their users are told to ask again, or get the answer already saved.

A killed process leaves its update claims ``processing`` (see ``DedupMiddleware``). Channels
rarely redeliver such an update: Telegram's long polling has confirmed it already and webhooks
were answered at once. So after start-up, and periodically, claims whose holder has exited (or
whose lease ran out) are marked ``abandoned`` (once, across processes) and, in that same
transaction, an apology to their chat is written into the outbox; whichever process reaches
the channel delivers it. A redelivery that comes anyway is still answered. The apology is in
the language of the person who asked (``billing.notices.reader_translator``: their
``/language``, else their organisation's, else ``DEFAULT_LANGUAGE``).

A turn whose answer was saved (its claim ``answered``) but not yet sent when its process died
gets that answer delivered through the outbox instead, and its claim ``done``: it was paid
for, and is not asked of the assistant again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from billing.holders import is_dead_local_holder
from billing.notices import CHAT_CHANNELS, Notice, enqueue, reader_translator
from core.clock import Clock
from core.envelope import ChatAddress
from core.i18n import N_, Translators
from core.scopes import scope_of
from storage.db import Sessions
from storage.repositories.conversations import ConversationRepository
from storage.repositories.tenants import BindingRepository
from storage.repositories.updates import UpdateClaimRepository

log = logging.getLogger(__name__)

ASK_AGAIN = N_(
    "Sorry, I was interrupted before I could answer your last message. Please send it again."
)
#: The outbox cause of an apology (its reference is the claim's id).
CAUSE = "turn.interrupted"
#: The outbox cause of a saved answer delivered after its process died (same reference).
ANSWER_CAUSE = "turn.answered"


def claim_address(channel: str, reply_to: Mapping[str, Any]) -> ChatAddress:
    """The chat of a claim (``handlers.middlewares.reply_address``) as an address."""
    return ChatAddress(
        channel,
        str(reply_to["chat_key"]),
        user_id=str(reply_to.get("user_id") or ""),
        thread_key=str(reply_to.get("thread_key") or ""),
        is_private=bool(reply_to.get("private", True)),
    )


class InterruptedTurns:
    def __init__(
        self,
        sessions: Sessions,
        clock: Clock,
        *,
        grace: timedelta = timedelta(seconds=10),
        translators: Translators | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        #: The catalogs apologies are written with (English without them).
        self._translators = translators
        #: A claim younger than this is left alone: its update may still be redelivered.
        self._grace = grace

    async def sweep(self) -> list[int]:
        """Abandon cut-short turns and write their apologies; the outbox rows written."""
        now = self._clock()
        async with self._sessions() as session:
            claims = await UpdateClaimRepository(session).interrupted(now - self._grace)
        written: list[int] = []
        for claim in claims:
            expired = claim.lease_expires_at is not None and claim.lease_expires_at <= now
            if not (expired or is_dead_local_holder(claim.holder)):
                continue  # still being answered by a live process
            if claim.channel not in CHAT_CHANNELS or not claim.reply_to:
                continue  # the console: nobody to write to once the terminal is gone
            address = claim_address(claim.channel, claim.reply_to)
            async with self._sessions.begin() as session:
                if not await UpdateClaimRepository(session).abandon(claim):
                    continue  # another process took it
                answer = (
                    await ConversationRepository(session).message_text(claim.answer_message_id)
                    if claim.state == "answered" and claim.answer_message_id is not None
                    else None
                )
                if answer is not None:
                    text, cause = answer, ANSWER_CAUSE
                else:
                    scope = claim.reply_to.get("scope_key") or scope_of(address) or ""
                    tenant = await BindingRepository(session).tenant_for(claim.channel, str(scope))
                    t = await reader_translator(
                        session, self._translators, address,
                        tenant_id=tenant.id if tenant is not None else None,
                    )  # fmt: skip
                    text, cause = t(ASK_AGAIN), CAUSE
                written += await enqueue(
                    session, [Notice(address, text)], cause_kind=cause,
                    cause_ref=str(claim.id), now=now,
                )  # fmt: skip
            told = "its saved answer" if answer is not None else "to ask again"
            log.warning("telling %s chat %s %s", claim.channel, address.chat_key, told)
        return written
