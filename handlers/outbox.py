"""Delivering the outbox table: messages to chats and e-mail addresses outside of any turn.

What causes a message (an invoice sent, a payment landed, a renewal failed, an alert push, a
crash apology) writes it with :func:`billing.notices.enqueue` in its own transaction. After
commit, any process that can reach the message's channel delivers it:

- ``switchboard run`` registers its running channels (and e-mail) and runs :meth:`Outbox.work`:
  due rows are attempted every few seconds, and rows its own transactions wrote at once
  (:meth:`Outbox.post`);
- the shell (``switchboard admin``) registers the Bot API, the Slack Web API and SMTP when it
  has their settings, and delivers the rows its command wrote right after commit
  (:meth:`Outbox.deliver`); what it cannot reach waits for a running process.

Each attempt leases its row first (one conditional UPDATE), so two processes never send the same
row. A failed attempt is tried again later, with back-off (30 s, 1 min, 2 min, … up to an hour);
a message still undelivered 24 hours after it was written is ``failed`` and an alert is
recorded (``/alerts``, and the daily push to the admins).

At least once, not at most once: a process that dies after the provider accepted a message but
before it committed ``sent`` leaves the row ``sending``; when its lease runs out another process
sends it again. A duplicate in that window of milliseconds is the price of never losing an
invoice to a crash (neither Telegram nor Slack nor SMTP can deduplicate for us). The same holds
within one message: its file is sent before its text, and a failure in between sends both again.

The cause may react to the first delivery that succeeded (an invoice becomes ``sent``): its
reaction runs in the transaction that marks the row sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.envelope import ChatAddress, LinkButton, OutboundFile
from handlers.background import BackgroundTasks
from storage.db import Sessions
from storage.models import OutboxMessage
from storage.repositories.alerts import AlertRepository
from storage.repositories.outbox import OutboxRepository, address_of, buttons_of, files_of

log = logging.getLogger(__name__)

#: How long one attempt may hold its row; a process that died frees it after this.
LEASE = timedelta(minutes=5)
#: A message not delivered this long after it was written is given up (and alerted).
GIVE_UP_AFTER = timedelta(hours=24)
#: The wait after the first failed attempt; doubled after each one, up to :data:`MAX_BACKOFF`.
FIRST_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
#: How often ``switchboard run`` looks for due rows.
POLL_SECONDS = 5.0
#: The alert recorded for a message given up.
ALERT_KIND = "outbox_failed"


class NoticeSink(Protocol):
    """What a message is written to: a chat's reply sink, or an e-mail being composed."""

    async def send_file(self, file: OutboundFile) -> None: ...

    async def send_text(self, text: str) -> None: ...

    async def send_buttons(self, text: str, buttons: Sequence[LinkButton]) -> None: ...


SinkFactory = Callable[[ChatAddress], NoticeSink]
#: What a cause does when one of its messages was delivered: ``(session, cause_ref, now)``,
#: in the transaction that marks the row sent. It runs for every success, so it must be
#: idempotent (the first one changes something, the others find it done).
Reaction = Callable[[AsyncSession, str, datetime], Awaitable[None]]


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt."""
    wait: timedelta = FIRST_BACKOFF * 2 ** min(max(attempts - 1, 0), 20)
    return min(wait, MAX_BACKOFF)


@dataclass(frozen=True, slots=True)
class Delivered:
    """What :meth:`Outbox.deliver` did with the rows it was given."""

    sent: int = 0
    #: Tried now and failed: tried again later.
    failed: int = 0
    #: Not tried by this process (a channel it does not reach, or another process has it).
    left: int = 0
    errors: tuple[str, ...] = ()


class Outbox:
    def __init__(
        self,
        sessions: Sessions,
        *,
        media_dir: Path,
        clock: Clock,
        owner: str,
        lease: timedelta = LEASE,
        give_up_after: timedelta = GIVE_UP_AFTER,
    ) -> None:
        self._sessions = sessions
        self.media_dir = media_dir
        self._clock = clock
        self._owner = owner
        self._lease = lease
        self._give_up_after = give_up_after
        self._channels: dict[str, SinkFactory] = {}
        self._reactions: dict[str, Reaction] = {}
        self._tasks = BackgroundTasks("outbox")
        self._open = True
        self._wake = asyncio.Event()

    def register(self, channel: str, sink_for: SinkFactory) -> None:
        """Deliver ``channel``'s messages through ``sink_for`` (a later one replaces it)."""
        self._channels[channel] = sink_for

    def react(self, cause_kind: str, reaction: Reaction) -> None:
        self._reactions[cause_kind] = reaction

    def reaches(self, channel: str) -> bool:
        """Whether this process can deliver to ``channel``."""
        return channel in self._channels

    @property
    def channels(self) -> frozenset[str]:
        return frozenset(self._channels)

    @property
    def accepting(self) -> bool:
        """False once the process is stopping."""
        return self._open

    def close(self) -> None:
        self._open = False
        self._wake.set()

    def post(self, ids: Sequence[int]) -> None:
        """Deliver rows just committed, in the background (a webhook is answered at once);
        what this process cannot reach is left to the processes that can."""
        if ids and self._open:
            self._tasks.spawn(self.deliver(list(ids)), name="outbox")

    async def drain(self, seconds: float) -> bool:
        return await self._tasks.drain(seconds)

    async def deliver(self, ids: Sequence[int]) -> Delivered:
        """Attempt the rows ``ids`` now, those of channels this process reaches."""
        sent = failed = left = 0
        errors: list[str] = []
        for message_id in ids:
            outcome = await self._attempt(message_id)
            if outcome is None:
                left += 1
            elif outcome == "":
                sent += 1
            else:
                failed += 1
                errors.append(outcome)
        return Delivered(sent, failed, left, tuple(errors))

    async def deliver_due(self, *, limit: int = 50) -> Delivered:
        """One pass of the worker: give up what is too old, then attempt what is due."""
        await self.give_up_stale()
        async with self._sessions() as session:
            due = await OutboxRepository(session).due(self._clock(), self.channels, limit=limit)
        return await self.deliver([row.id for row in due])

    async def work(self, poll_seconds: float = POLL_SECONDS) -> None:
        """``switchboard run``'s worker: a pass every ``poll_seconds`` until cancelled."""
        while self._open:
            try:
                await self.deliver_due()
            except Exception:
                log.exception("outbox pass failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll_seconds)

    async def give_up_stale(self) -> list[int]:
        """Rows written more than 24 hours ago and still not delivered (on any channel, also
        one no process reaches): ``failed``, each with an alert."""
        now = self._clock()
        given_up: list[int] = []
        async with self._sessions() as session:
            stale = await OutboxRepository(session).stale(now - self._give_up_after, now)
        for row in stale:
            async with self._sessions.begin() as session:
                if await OutboxRepository(session).give_up(row.id, now):
                    await self._alert(session, row, now)
                    given_up.append(row.id)
        return given_up

    async def _attempt(self, message_id: int) -> str | None:
        """None: not attempted; "": sent; otherwise the error of a failed attempt."""
        now = self._clock()
        async with self._sessions.begin() as session:
            repo = OutboxRepository(session)
            row = await repo.get(message_id)
            if row is None or row.channel not in self._channels:
                return None
            if not await repo.claim(message_id, self._owner, now, now + self._lease):
                return None
            row = await repo.get(message_id)
            assert row is not None
        try:
            await self._send(row)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
            log.warning("outbox: %s message %d to %s failed: %s", row.cause_kind, row.id,
                        row.channel, error)  # fmt: skip
            await self._failed(row, error)
            return error
        async with self._sessions.begin() as session:
            done = self._clock()
            if await OutboxRepository(session).settle(row.id, self._owner, "sent", now=done):
                reaction = self._reactions.get(row.cause_kind)
                if reaction is not None:
                    await reaction(session, row.cause_ref, done)
            else:  # our lease ran out while sending and another process took the row
                log.warning("outbox: message %d was sent after its lease ran out", row.id)
        log.info("outbox: %s message %d sent to %s", row.cause_kind, row.id, row.channel)
        return ""

    async def _send(self, row: OutboxMessage) -> None:
        sink = self._channels[row.channel](address_of(row))
        for file in files_of(row, self.media_dir):
            await sink.send_file(file)
        buttons = buttons_of(row)
        if buttons:
            await sink.send_buttons(row.text, buttons)
        else:
            await sink.send_text(row.text)

    async def _failed(self, row: OutboxMessage, error: str) -> None:
        now = self._clock()
        async with self._sessions.begin() as session:
            repo = OutboxRepository(session)
            if now - row.created_at >= self._give_up_after:
                if await repo.settle(row.id, self._owner, "failed", now=now, error=error):
                    row.last_error = error
                    await self._alert(session, row, now)
                return
            await repo.settle(
                row.id, self._owner, "pending", now=now,
                next_attempt_at=now + backoff(row.attempts), error=error,
            )  # fmt: skip

    async def _alert(self, session: AsyncSession, row: OutboxMessage, now: datetime) -> None:
        thread = f"/{row.thread_key}" if row.thread_key else ""
        recipient = f"{row.channel} {row.chat_key}{thread}"
        cause = f"{row.cause_kind} {row.cause_ref}".strip()
        detail = (
            f"gave up delivering a message ({cause}) to {recipient} after "
            f"{row.attempts} attempt(s) in {self._give_up_after.total_seconds() / 3600:g} h"
            + (f": {row.last_error}" if row.last_error else " (no process reached the channel)")
        )
        log.error("outbox: %s", detail)
        await AlertRepository(session).add(ALERT_KIND, detail, now=now, tenant_id=row.tenant_id)
