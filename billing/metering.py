"""Budget reservation, settlement and release of provider calls.

Every metered call goes through :meth:`Metering.call`, one context that reserves on entry and,
unless the body settled the call, marks it failed and releases the reservation on the way out,
whatever ends the body (an error, a cancellation, a shutdown). Underneath, a call's life is
:meth:`Metering.reserve` (own transaction: the tenant's available tokens are
reserved atomically and a ``reserved`` usage event is written), then either
:meth:`Metering.settle` inside the turn's transaction (usage event settled, ledger debit of the
provider-reported tokens, reservation released) or :meth:`Metering.fail` (usage event recorded as
failed, nothing charged, reservation released). Reservations orphaned by a crash are released by
:meth:`Metering.release_orphans`: at once when their holder was a process of this host that has
exited, otherwise when their lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from assistants.pricing import PROVIDER_CURRENCY, Price, Pricer
from assistants.types import Usage
from billing.holders import is_dead_local_holder, this_process
from core.clock import Clock, month_start, system_clock
from core.errors import InsufficientTokens
from storage.db import Sessions
from storage.models import Tenant, UsageEvent
from storage.repositories.ledger import LedgerRepository
from storage.repositories.rollups import RollupRepository, UsageDelta
from storage.repositories.usage import UsageRepository
from storage.transient import is_conflict, retry_transient

log = logging.getLogger(__name__)


class Joined(Protocol):
    """A write done first in a reservation's transaction (see :meth:`Metering.reserve`)."""

    async def join(self, session: AsyncSession) -> None: ...

    def committed(self) -> None:
        """Called once the reservation's transaction, with the write, has committed."""


#: Below this many output tokens an answer is not worth starting.
MIN_OUTPUT_TOKENS = 16
_MAX_RESERVE_ATTEMPTS = 50
_FIRST_POLL_SECONDS = 0.05
_MAX_POLL_SECONDS = 0.5
#: How long a reservation is run again while the database rolls it back for others.
_CONFLICT_RETRY_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Reservation:
    event_id: int
    tenant_id: int
    idempotency_key: str
    provider: str
    model: str
    tokens: int
    #: The output cap that keeps input + output within the reservation.
    max_output_tokens: int
    #: Prices in force at this time apply to the call.
    reserved_at: datetime
    assistant_id: int | None = None


@dataclass(frozen=True, slots=True)
class Charge:
    """What settling a call charged."""

    tokens: int
    cost_micros: int
    currency: str
    priced: bool


class MeteredCall:
    """A reserved provider call inside :meth:`Metering.call`: settle it, or let it fail."""

    def __init__(self, metering: Metering, reservation: Reservation) -> None:
        self._metering = metering
        self.reservation = reservation
        self._started = time.perf_counter()
        #: Settled or failed by the body: nothing is left for the context to do on a clean exit.
        self.closed = False

    @property
    def max_output_tokens(self) -> int:
        """The output cap that keeps the call within what was reserved."""
        return self.reservation.max_output_tokens

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self._started) * 1000)

    async def settle(
        self,
        session: AsyncSession,
        usage: Usage,
        *,
        model: str | None = None,
        conversation_id: int | None = None,
        latency_ms: int | None = None,
    ) -> Charge | None:
        """Charge the provider-reported usage inside the caller's transaction."""
        charge = await self._metering.settle(
            session,
            self.reservation,
            usage,
            latency_ms=self.elapsed_ms() if latency_ms is None else latency_ms,
            model=model,
            conversation_id=conversation_id,
        )
        self.closed = True
        return charge

    async def fail(self, error: str) -> None:
        """Record the call as failed (nothing charged) and release its reservation."""
        await self._metering.fail(self.reservation, error, latency_ms=self.elapsed_ms())
        self.closed = True


class Metering:
    def __init__(
        self,
        sessions: Sessions,
        pricer: Pricer,
        *,
        clock: Clock = system_clock,
        reservation_ttl: timedelta = timedelta(minutes=10),
        reservation_wait: timedelta = timedelta(minutes=2),
        retry_window: timedelta = timedelta(seconds=30),
        min_output_tokens: int = MIN_OUTPUT_TOKENS,
        holder: str | None = None,
    ) -> None:
        self._holder = holder or this_process()
        self._sessions = sessions
        self._pricer = pricer
        self._clock = clock
        self._ttl = reservation_ttl
        self._wait = reservation_wait.total_seconds()
        self._retry_seconds = retry_window.total_seconds()
        self._min_output = min_output_tokens
        #: Reservations of this process not yet settled or failed: the sweeper leaves these
        #: alone and releases any other reservation this holder left behind at once.
        self._open: set[int] = set()
        #: Set whenever tokens go back to a balance, waking turns that wait for them.
        self._released = asyncio.Event()

    @property
    def holder(self) -> str:
        return self._holder

    @property
    def open_calls(self) -> int:
        return len(self._open)

    @asynccontextmanager
    async def call(
        self,
        tenant: Tenant,
        *,
        key: str,
        provider: str,
        model: str,
        prompt_tokens_bound: int,
        max_output_tokens: int,
        kind: str = "chat",
        assistant_id: int | None = None,
        conversation_id: int | None = None,
        joined: Joined | None = None,
    ) -> AsyncIterator[MeteredCall]:
        """Reserve for one provider call; release on any way out that did not settle it.

        Settling happens inside the caller's transaction, which may still roll back after
        :meth:`MeteredCall.settle` returned; so on an error the release is attempted anyway. It is
        conditional on the event still being ``reserved``, which makes it a no-op after a
        committed settle and safe to repeat.
        """
        reservation = await self.reserve(
            tenant,
            key=key,
            provider=provider,
            model=model,
            prompt_tokens_bound=prompt_tokens_bound,
            max_output_tokens=max_output_tokens,
            kind=kind,
            assistant_id=assistant_id,
            conversation_id=conversation_id,
            joined=joined,
        )
        call = MeteredCall(self, reservation)
        try:
            try:
                yield call
            except BaseException as exc:
                # Shielded: a cancelled turn must still give its tokens back at once, not after
                # the reservation's lease runs out.
                await asyncio.shield(call.fail(_describe(exc)))
                raise
            if not call.closed:
                await call.fail("call ended without being settled")
        finally:
            self._open.discard(reservation.event_id)
            # The body's transaction has committed (or rolled back): what it released is visible.
            self._signal_release()

    async def reserve(
        self,
        tenant: Tenant,
        *,
        key: str,
        provider: str,
        model: str,
        prompt_tokens_bound: int,
        max_output_tokens: int,
        kind: str = "chat",
        assistant_id: int | None = None,
        conversation_id: int | None = None,
        joined: Joined | None = None,
    ) -> Reservation:
        """Reserve up to ``prompt_tokens_bound + max_output_tokens``.

        A prepaid tenant is served while its balance lasts: when less is available the output cap
        shrinks instead of the call being refused, down to a minimum useful answer. When the
        balance covers the call but other calls' reservations stand in the way, this waits (up to
        ``reservation_wait``) for them to settle rather than refusing: they usually cost a
        fraction of what they reserved. Only a balance that cannot cover ``prompt_tokens_bound``
        plus a minimal answer is refused at once.
        """
        minimum = prompt_tokens_bound + self._min_output
        wanted = prompt_tokens_bound + max(max_output_tokens, self._min_output)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        poll = _FIRST_POLL_SECONDS
        while True:
            released = self._released
            try:
                return await self._reserve_once(
                    tenant,
                    key=key,
                    provider=provider,
                    model=model,
                    prompt_tokens_bound=prompt_tokens_bound,
                    minimum=minimum,
                    wanted=wanted,
                    kind=kind,
                    assistant_id=assistant_id,
                    conversation_id=conversation_id,
                    joined=joined,
                )
            except _HeldByOthers as held:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise InsufficientTokens(tenant.slug, held.available, minimum) from None
            # Woken early by a release in this process; polling covers other processes.
            with suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), min(poll, remaining))
            poll = min(poll * 2, _MAX_POLL_SECONDS)

    async def _reserve_once(
        self,
        tenant: Tenant,
        *,
        key: str,
        provider: str,
        model: str,
        prompt_tokens_bound: int,
        minimum: int,
        wanted: int,
        kind: str,
        assistant_id: int | None,
        conversation_id: int | None,
        joined: Joined | None,
    ) -> Reservation:
        now = self._clock()

        # Ahead of longer transactions: the user is waiting for the answer to start. Turns
        # reserving at the same moment share one commit (each in its own savepoint): after a
        # batch of answers, the next messages all arrive together.
        async def reserve(session: AsyncSession) -> tuple[UsageEvent, int]:
            if joined is not None:
                await joined.join(session)
            usage = UsageRepository(session)
            granted = await self._grant(session, usage, tenant, minimum, wanted, now)
            event = await usage.add(
                UsageEvent(
                    idempotency_key=key,
                    tenant_id=tenant.id,
                    assistant_id=assistant_id,
                    conversation_id=conversation_id,
                    provider=provider,
                    model=model,
                    kind=kind,
                    status="reserved",
                    holder=self._holder,
                    reserved_tokens=granted,
                    created_at=now,
                    lease_expires_at=now + self._ttl,
                )
            )
            return event, granted

        # Rolled back for another transaction (a deadlock): it wrote nothing, so run it again.
        # An outage is not retried here: the user has been waiting for nothing yet, and is told.
        event, granted = await retry_transient(
            partial(self._sessions.run_grouped, reserve, ahead=True, order=tenant.id),
            seconds=_CONFLICT_RETRY_SECONDS,
            what="reserving",
            worth_retrying=is_conflict,
        )
        if joined is not None:
            joined.committed()
        self._open.add(event.id)
        return Reservation(
            event.id,
            tenant.id,
            key,
            provider,
            model,
            granted,
            granted - prompt_tokens_bound,
            now,
            assistant_id,
        )

    async def _grant(
        self,
        session: AsyncSession,
        usage: UsageRepository,
        tenant: Tenant,
        minimum: int,
        wanted: int,
        now: datetime,
    ) -> int:
        if tenant.plan == "postpaid":
            if tenant.monthly_token_quota is not None:
                # Soft cap: postpaid usage is invoiced, the quota only stops runaway use.
                fresh = await session.get(Tenant, tenant.id, populate_existing=True)
                assert fresh is not None
                left = tenant.monthly_token_quota - await usage.period_charged(
                    tenant.id, month_start(now)
                )
                available = left - fresh.tokens_reserved
                if available < minimum:
                    _refuse_or_wait(tenant, left, available, minimum)
                wanted = min(wanted, available)
            await usage.force_reserve(tenant.id, wanted)
            return wanted
        # The caller's snapshot of the tenant usually shows plenty: try it first and save a read.
        # The conditional UPDATE is what guards the balance, so a stale snapshot only costs a
        # retry; anything short of the full amount is re-read before granting less or refusing.
        available = tenant.token_balance - tenant.tokens_reserved
        if available >= wanted and await usage.try_reserve(tenant.id, wanted):
            return wanted
        for _ in range(_MAX_RESERVE_ATTEMPTS):
            fresh = await session.get(Tenant, tenant.id, populate_existing=True)
            assert fresh is not None
            available = fresh.token_balance - fresh.tokens_reserved
            if available < minimum:
                _refuse_or_wait(tenant, fresh.token_balance, available, minimum)
            grant = min(wanted, available)
            if await usage.try_reserve(tenant.id, grant):
                return grant
        raise InsufficientTokens(tenant.slug, 0, minimum)

    async def settle(
        self,
        session: AsyncSession,
        reservation: Reservation,
        usage: Usage,
        *,
        latency_ms: int,
        model: str | None = None,
        conversation_id: int | None = None,
    ) -> Charge | None:
        """Charge the provider-reported tokens, inside the caller's transaction.

        ``model`` is the model the provider reports having used (a dated snapshot, say); it is
        priced first, then the requested one. Returns None when the reservation was already
        settled or released (a replay): nothing is charged twice.
        """
        now = self._clock()
        price = await self._price(session, reservation, usage, model)
        charge = Charge(usage.billable_tokens, price.cost_micros, price.currency, price.priced)
        # The provider billed what it reports, so that is charged even beyond the reservation
        # (a prepaid balance may then go below zero and the tenant is refused until topped up);
        # the excess is kept on the event for the ``overdraft`` alert.
        overdraft = max(charge.tokens - reservation.tokens, 0)
        values: dict[str, object] = {
            "input_tokens": usage.input_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "output_tokens": usage.output_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "estimated": usage.estimated,
            "usage_report": usage.report,
            "charged_tokens": charge.tokens,
            "cost_micros": charge.cost_micros,
            "cost_currency": charge.currency,
            "priced": charge.priced,
            "latency_ms": latency_ms,
            "lease_expires_at": None,
            "overdraft_tokens": overdraft,
        }
        if conversation_id is not None:
            values["conversation_id"] = conversation_id
        if not await UsageRepository(session).finish(reservation.event_id, "settled", now, values):
            return None
        await RollupRepository(session).record(
            UsageDelta(
                day=reservation.reserved_at.date(),
                tenant_id=reservation.tenant_id,
                assistant_id=reservation.assistant_id or 0,
                provider=reservation.provider,
                model=reservation.model,
                cost_currency=charge.currency,
                settled=True,
                input_tokens=usage.input_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                output_tokens=usage.output_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                charged_tokens=charge.tokens,
                cost_micros=charge.cost_micros,
                latency_ms=latency_ms,
            )
        )
        if overdraft:
            log.warning(
                "overdraft: tenant %s was charged %d tokens beyond the %d reserved for %s",
                reservation.tenant_id,
                overdraft,
                reservation.tokens,
                reservation.idempotency_key,
            )
        if not price.priced:
            log.warning(
                "unpriced model %s/%s: usage recorded at zero cost",
                reservation.provider,
                reservation.model,
            )
        if usage.estimated:
            log.warning(
                "unmetered call %s: %s/%s reported no usable usage; charged an estimate of %d",
                reservation.idempotency_key,
                reservation.provider,
                reservation.model,
                charge.tokens,
            )
        await LedgerRepository(session).post(
            reservation.tenant_id,
            "usage",
            -charge.tokens,
            now=now,
            reference=f"usage:{reservation.idempotency_key}",
            note=f"{reservation.provider}/{reservation.model}",
            release_reserved=reservation.tokens,
        )
        return charge

    async def _price(
        self, session: AsyncSession, reservation: Reservation, usage: Usage, model: str | None
    ) -> Price:
        at = reservation.reserved_at
        if model and model != reservation.model:
            reported = await self._pricer.price(session, reservation.provider, model, usage, at)
            if reported.priced:
                return reported
        return await self._pricer.price(session, reservation.provider, reservation.model, usage, at)

    async def fail(self, reservation: Reservation, error: str, *, latency_ms: int) -> None:
        """Record a failed call: nothing charged, reservation released.

        Retried while the database is unreachable; if it stays so, the sweeper releases the
        reservation later (it is this holder's and no call owns it any more).
        """

        async def attempt() -> None:
            now = self._clock()
            async with self._sessions.begin() as session:
                repo = UsageRepository(session)
                values = {"error": error[:2000], "latency_ms": latency_ms, "lease_expires_at": None}
                if await repo.finish(reservation.event_id, "failed", now, values):
                    await repo.release_reserved(reservation.tenant_id, reservation.tokens)
                    await RollupRepository(session).record(
                        UsageDelta(
                            day=reservation.reserved_at.date(),
                            tenant_id=reservation.tenant_id,
                            assistant_id=reservation.assistant_id or 0,
                            provider=reservation.provider,
                            model=reservation.model,
                            cost_currency=PROVIDER_CURRENCY,
                            settled=False,
                            latency_ms=latency_ms,
                        )
                    )

        try:
            await retry_transient(
                attempt, seconds=self._retry_seconds, what="releasing a reservation"
            )
        finally:
            self._open.discard(reservation.event_id)
        self._signal_release()

    def _signal_release(self) -> None:
        self._released.set()
        self._released = asyncio.Event()

    async def release_orphans(self) -> list[UsageEvent]:
        """Release reservations whose process died mid-call: those of an exited process of this
        host at once, any other once its lease has run out."""
        now = self._clock()
        released: list[UsageEvent] = []
        async with self._sessions.begin() as session:
            repo = UsageRepository(session)
            for event in await repo.open_reservations():
                expired = event.lease_expires_at is not None and event.lease_expires_at <= now
                # A reservation of this very process that no running call owns was left by a
                # call whose release failed (the database was down): it can go at once.
                abandoned = event.holder == self._holder and event.id not in self._open
                if not (expired or abandoned or is_dead_local_holder(event.holder)):
                    continue
                if await repo.claim_reserved(event.id, "released", now):
                    event.error = (
                        "reservation released after its lease expired"
                        if expired
                        else "reservation released: its process has exited"
                    )
                    await repo.release_reserved(event.tenant_id, event.reserved_tokens)
                    released.append(event)
        if released:
            self._signal_release()
        for event in released:
            log.warning(
                "released orphaned reservation %s of tenant %s (%s tokens)",
                event.idempotency_key,
                event.tenant_id,
                event.reserved_tokens,
            )
        return released


class _HeldByOthers(Exception):
    """The balance covers the call, but reservations of calls in flight stand in the way."""

    def __init__(self, available: int) -> None:
        self.available = available


def _refuse_or_wait(tenant: Tenant, limit: int, available: int, minimum: int) -> None:
    """Refuse when even a balance (or quota) free of reservations cannot cover ``minimum``;
    otherwise the call waits for reservations to settle."""
    if limit < minimum:
        raise InsufficientTokens(tenant.slug, available, minimum)
    raise _HeldByOthers(available)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "call cancelled"
    return f"{type(exc).__name__}: {exc}"[:2000]
