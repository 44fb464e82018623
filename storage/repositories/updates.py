"""Claims on inbound updates: each update is handled once, and a turn cut short is not lost.

A claim is inserted ``processing`` (unique per channel and update key) with the claiming
process as ``holder`` and a lease, marked ``answered`` (with the answer's message) in the
transaction that saves an answer, and ``done`` when the turn ends. A redelivered update whose
claim is still ``processing`` or ``answered`` may take it over only when its holder is certainly
gone (judged by the caller) or its lease has run out; otherwise the redelivery is a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ProcessedUpdate
from storage.states import ClaimState

#: States in which a claim's turn did not finish: a redelivery may take it over.
UNFINISHED: tuple[ClaimState, ...] = ("processing", "answered", "abandoned")
#: States whose holder may still be at work: taken over only from a dead holder or a lapsed lease.
HELD: tuple[ClaimState, ...] = ("processing", "answered")


# The statements every turn runs, built once, Core on the table: values are bound per
# execution (keys naming columns are the row's values; the WHERE's names are not columns').
_CLAIMS = cast(Table, ProcessedUpdate.__table__)
_INSERT_CLAIM = insert(_CLAIMS)
#: The holder's own claim on one update.
_MARK_CLAIM = update(_CLAIMS).where(
    _CLAIMS.c.channel == bindparam("of_channel"),
    _CLAIMS.c.update_key == bindparam("of_key"),
    _CLAIMS.c.holder == bindparam("of_holder"),
)


class UpdateClaimRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(
        self,
        channel: str,
        update_key: str,
        *,
        holder: str,
        lease_expires_at: datetime,
        reply_to: Mapping[str, str | bool],
        now: datetime,
    ) -> None:
        """Insert a ``processing`` claim; the unique constraint rejects a second one at commit."""
        self.session.add(
            ProcessedUpdate(
                channel=channel,
                update_key=update_key,
                state="processing",
                holder=holder,
                lease_expires_at=lease_expires_at,
                reply_to=dict(reply_to),
                created_at=now,
            )
        )

    async def insert(
        self,
        channel: str,
        update_key: str,
        *,
        holder: str,
        lease_expires_at: datetime | None,
        reply_to: Mapping[str, str | bool],
        now: datetime,
        state: ClaimState = "processing",
    ) -> None:
        """Insert a claim at once (``IntegrityError`` if the update is claimed already)."""
        await self.session.execute(
            _INSERT_CLAIM,
            {
                "channel": channel,
                "update_key": update_key,
                "state": state,
                "holder": holder,
                "lease_expires_at": lease_expires_at,
                "reply_to": dict(reply_to),
                "created_at": now,
            },
        )

    async def take_over(
        self,
        channel: str,
        update_key: str,
        *,
        holder: str,
        lease_expires_at: datetime,
        now: datetime,
        is_gone: Callable[[str | None], bool],
    ) -> ProcessedUpdate | None:
        """Take an unfinished claim whose holder is gone or whose lease ran out: the claim as it
        was (an ``answered`` one has an answer to deliver, not a turn to run again); ``None``
        when it is finished or still held (the update is a duplicate)."""
        claim = (
            await self.session.execute(
                select(ProcessedUpdate).where(
                    ProcessedUpdate.channel == channel, ProcessedUpdate.update_key == update_key
                )
            )
        ).scalar_one_or_none()
        if claim is None or claim.state not in UNFINISHED:
            return None
        expired = claim.lease_expires_at is None or claim.lease_expires_at <= now
        if claim.state in HELD and not (expired or is_gone(claim.holder)):
            return None
        before = ProcessedUpdate(state=claim.state, answer_message_id=claim.answer_message_id)
        # Conditional on what was read, so two redeliveries cannot both take it.
        result = await self.session.execute(
            update(ProcessedUpdate)
            .where(
                ProcessedUpdate.id == claim.id,
                ProcessedUpdate.state == claim.state,
                ProcessedUpdate.holder == claim.holder,
            )
            .values(state="processing", holder=holder, lease_expires_at=lease_expires_at)
        )
        return before if result.rowcount else None  # type: ignore[attr-defined]

    async def answered(self, channel: str, update_key: str, holder: str, message_id: int) -> None:
        """The answer ``message_id`` is saved (in this transaction); the lease stays until it
        has been delivered (``finish``)."""
        await self._mark(
            channel, update_key, holder, state="answered", answer_message_id=message_id
        )

    async def finish(self, channel: str, update_key: str, holder: str) -> None:
        await self._mark(channel, update_key, holder, state="done", lease_expires_at=None)

    async def _mark(self, channel: str, update_key: str, holder: str, **values: object) -> None:
        params = {"of_channel": channel, "of_key": update_key, "of_holder": holder, **values}
        await self.session.execute(_MARK_CLAIM, params)

    async def interrupted(self, created_before: datetime) -> list[ProcessedUpdate]:
        """``processing`` and ``answered`` claims older than ``created_before`` (the caller
        judges holders)."""
        query = select(ProcessedUpdate).where(
            ProcessedUpdate.state.in_(HELD), ProcessedUpdate.created_at <= created_before
        )
        return list((await self.session.execute(query)).scalars())

    async def abandon(self, claim: ProcessedUpdate) -> bool:
        """Close a cut-short claim once: ``abandoned`` (its chat is told to ask again), or
        ``done`` for an ``answered`` one (its answer is delivered); False if another process
        did first."""
        result = await self.session.execute(
            update(ProcessedUpdate)
            .where(
                ProcessedUpdate.id == claim.id,
                ProcessedUpdate.state == claim.state,
                ProcessedUpdate.holder == claim.holder,
            )
            .values(
                state="done" if claim.state == "answered" else "abandoned", lease_expires_at=None
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
