"""Budget reservation, settlement and release of provider calls.

A call's life: :meth:`Metering.reserve` (own transaction: the tenant's available tokens are
reserved atomically and a ``reserved`` usage event is written), then either
:meth:`Metering.settle` inside the turn's transaction (usage event settled, ledger debit of the
provider-reported tokens, reservation released) or :meth:`Metering.fail` (usage event recorded as
failed, nothing charged, reservation released). Reservations orphaned by a crash carry a lease and
are released by :meth:`Metering.release_expired`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistants.pricing import Pricer
from assistants.types import Usage
from bot.errors import InsufficientTokens
from storage.models import Tenant, UsageEvent
from storage.repositories.ledger import LedgerRepository
from storage.repositories.usage import UsageRepository

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: Below this many output tokens an answer is not worth starting.
MIN_OUTPUT_TOKENS = 16
_MAX_RESERVE_ATTEMPTS = 50


def system_clock() -> datetime:
    return datetime.now(UTC)


def month_start(at: datetime) -> datetime:
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


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


class Metering:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        pricer: Pricer,
        *,
        clock: Clock = system_clock,
        reservation_ttl: timedelta = timedelta(minutes=10),
        min_output_tokens: int = MIN_OUTPUT_TOKENS,
    ) -> None:
        self._sessions = sessions
        self._pricer = pricer
        self._clock = clock
        self._ttl = reservation_ttl
        self._min_output = min_output_tokens

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
    ) -> Reservation:
        """Reserve up to ``prompt_tokens_bound + max_output_tokens``.

        A prepaid tenant is served while its balance lasts: when less is available the output cap
        shrinks instead of the call being refused, down to a minimum useful answer.
        """
        minimum = prompt_tokens_bound + self._min_output
        wanted = prompt_tokens_bound + max(max_output_tokens, self._min_output)
        now = self._clock()
        async with self._sessions.begin() as session:
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
                    reserved_tokens=granted,
                    created_at=now,
                    lease_expires_at=now + self._ttl,
                )
            )
        return Reservation(
            event.id, tenant.id, key, provider, model, granted, granted - prompt_tokens_bound
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
                used = await usage.period_charged(tenant.id, month_start(now))
                available = tenant.monthly_token_quota - used - fresh.tokens_reserved
                if available < minimum:
                    raise InsufficientTokens(tenant.slug, available, minimum)
                wanted = min(wanted, available)
            await usage.force_reserve(tenant.id, wanted)
            return wanted
        for _ in range(_MAX_RESERVE_ATTEMPTS):
            fresh = await session.get(Tenant, tenant.id, populate_existing=True)
            assert fresh is not None
            available = fresh.token_balance - fresh.tokens_reserved
            if available < minimum:
                raise InsufficientTokens(tenant.slug, available, minimum)
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
    ) -> UsageEvent | None:
        """Charge the provider-reported tokens, inside the caller's transaction.

        Returns None when the reservation was already settled or released (a replay).
        """
        now = self._clock()
        repo = UsageRepository(session)
        if not await repo.claim_reserved(reservation.event_id, "settled", now):
            return None
        event = await repo.get(reservation.event_id)
        assert event is not None
        price = await self._pricer.price(
            session, reservation.provider, model or reservation.model, usage, event.created_at
        )
        charged = usage.billable_tokens
        event.input_tokens = usage.input_tokens
        event.cached_input_tokens = usage.cached_input_tokens
        event.output_tokens = usage.output_tokens
        event.reasoning_tokens = usage.reasoning_tokens
        event.charged_tokens = charged
        event.cost_micros = price.cost_micros
        event.cost_currency = price.currency
        event.priced = price.priced
        event.latency_ms = latency_ms
        event.lease_expires_at = None
        if not price.priced:
            log.warning(
                "unpriced model %s/%s: usage recorded at zero cost",
                reservation.provider,
                event.model,
            )
        await LedgerRepository(session).post(
            reservation.tenant_id,
            "usage",
            -charged,
            now=now,
            reference=f"usage:{reservation.idempotency_key}",
            note=f"{reservation.provider}/{event.model}",
            release_reserved=reservation.tokens,
        )
        return event

    async def fail(self, reservation: Reservation, error: str, *, latency_ms: int) -> None:
        """Record a failed call: nothing charged, reservation released."""
        now = self._clock()
        async with self._sessions.begin() as session:
            repo = UsageRepository(session)
            if not await repo.claim_reserved(reservation.event_id, "failed", now):
                return
            event = await repo.get(reservation.event_id)
            assert event is not None
            event.error = error[:2000]
            event.latency_ms = latency_ms
            event.lease_expires_at = None
            await repo.release_reserved(reservation.tenant_id, reservation.tokens)

    async def release_expired(self) -> list[UsageEvent]:
        """Release reservations whose lease ran out (their process died mid-call)."""
        now = self._clock()
        released: list[UsageEvent] = []
        async with self._sessions.begin() as session:
            repo = UsageRepository(session)
            for event in await repo.expired_reservations(now):
                if await repo.claim_reserved(event.id, "released", now):
                    event.error = "reservation released after its lease expired"
                    await repo.release_reserved(event.tenant_id, event.reserved_tokens)
                    released.append(event)
        for event in released:
            log.warning(
                "released orphaned reservation %s of tenant %s (%s tokens)",
                event.idempotency_key,
                event.tenant_id,
                event.reserved_tokens,
            )
        return released
