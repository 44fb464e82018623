from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import Table, Update, bindparam, case, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ModelPrice, Tenant, UsageEvent
from storage.rows import insert_row
from storage.states import UsageStatus

#: How a reservation ends (it leaves ``reserved`` once).
Outcome = Literal["settled", "failed", "released"]
#: Calls that reached the provider (counted in totals; a released one never did).
CALLED: tuple[UsageStatus, ...] = ("settled", "failed")


@dataclass(frozen=True, slots=True)
class UsageTotals:
    calls: int
    failed: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    charged_tokens: int
    #: Cost in micro-units per currency (provider prices in USD, ``model_prices`` in theirs).
    costs: dict[str, int]


# The reservation's statements, built once (each turn runs two or three): Core on the tables,
# not the ORM's bulk UPDATE, whose evaluation of loaded objects cost twice the statement. A
# tenant or event loaded in the session is therefore not updated by them (callers re-read).
_TENANTS = cast(Table, Tenant.__table__)
_EVENTS = cast(Table, UsageEvent.__table__)
_RESERVE = (
    update(_TENANTS)
    .where(_TENANTS.c.id == bindparam("tenant"))
    .values(tokens_reserved=_TENANTS.c.tokens_reserved + bindparam("tokens"))
)
_TRY_RESERVE = _RESERVE.where(
    _TENANTS.c.token_balance - _TENANTS.c.tokens_reserved >= bindparam("tokens")
)
_FINISH = update(_EVENTS).where(
    _EVENTS.c.id == bindparam("event"), _EVENTS.c.status == literal("reserved")
)


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def try_reserve(self, tenant_id: int, tokens: int) -> bool:
        """Add ``tokens`` to the tenant's reservation iff its balance still covers it.

        A single conditional UPDATE: concurrent reservers cannot both pass the check, on
        PostgreSQL (row lock, re-checked predicate) and SQLite (one writer) alike.
        """
        return await self._changed(_TRY_RESERVE, {"tenant": tenant_id, "tokens": tokens})

    async def force_reserve(self, tenant_id: int, tokens: int) -> None:
        """Reserve without a balance check (postpaid tenants are invoiced, not prepaid)."""
        await self._changed(_RESERVE, {"tenant": tenant_id, "tokens": tokens})

    async def release_reserved(self, tenant_id: int, tokens: int) -> None:
        await self._changed(_RESERVE, {"tenant": tenant_id, "tokens": -tokens})

    async def add(self, event: UsageEvent) -> UsageEvent:
        """Insert ``event`` (one prebuilt statement, see :mod:`storage.rows`); its id is set."""
        await insert_row(self.session, event)
        return event

    async def claim_reserved(self, event_id: int, status: Outcome, now: datetime) -> bool:
        """Move a reservation out of ``reserved`` exactly once; False if someone else did."""
        return await self.finish(event_id, status, now, {})

    async def finish(
        self, event_id: int, status: Outcome, now: datetime, values: Mapping[str, object]
    ) -> bool:
        """Like :meth:`claim_reserved`, writing the call's outcome in the same statement."""
        # Keys naming the event's columns are its new values (Core's SET from parameters).
        params = {**values, "status": status, "settled_at": now, "event": event_id}
        return await self._changed(_FINISH, params)

    async def _changed(self, statement: Update, params: dict[str, object]) -> bool:
        result = await self.session.execute(statement, params)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def get(self, event_id: int) -> UsageEvent | None:
        return await self.session.get(UsageEvent, event_id)

    async def open_reservations(self) -> list[UsageEvent]:
        query = select(UsageEvent).where(UsageEvent.status == "reserved")
        return list((await self.session.execute(query)).scalars())

    async def period_charged(self, tenant_id: int, since: datetime) -> int:
        query = select(func.coalesce(func.sum(UsageEvent.charged_tokens), 0)).where(
            UsageEvent.tenant_id == tenant_id, UsageEvent.created_at >= since
        )
        return int((await self.session.execute(query)).scalar_one())

    async def totals(self, tenant_id: int | None, since: datetime | None) -> UsageTotals:
        failed = func.sum(case((UsageEvent.status == "failed", 1), else_=0))
        query = select(
            func.count(UsageEvent.id),
            func.coalesce(failed, 0),
            func.coalesce(func.sum(UsageEvent.input_tokens), 0),
            func.coalesce(func.sum(UsageEvent.cached_input_tokens), 0),
            func.coalesce(func.sum(UsageEvent.output_tokens), 0),
            func.coalesce(func.sum(UsageEvent.reasoning_tokens), 0),
            func.coalesce(func.sum(UsageEvent.charged_tokens), 0),
        ).where(UsageEvent.status.in_(CALLED))
        costs = select(UsageEvent.cost_currency, func.sum(UsageEvent.cost_micros)).where(
            UsageEvent.status == "settled"
        )
        if tenant_id is not None:
            query = query.where(UsageEvent.tenant_id == tenant_id)
            costs = costs.where(UsageEvent.tenant_id == tenant_id)
        if since is not None:
            query = query.where(UsageEvent.created_at >= since)
            costs = costs.where(UsageEvent.created_at >= since)
        row = (await self.session.execute(query)).one()
        by_currency = await self.session.execute(costs.group_by(UsageEvent.cost_currency))
        calls, failures, inputs, cached, outputs, reasoning, charged = (int(v) for v in row)
        return UsageTotals(
            calls,
            failures,
            inputs,
            cached,
            outputs,
            reasoning,
            charged,
            costs={currency: int(micros or 0) for currency, micros in by_currency.all()},
        )

    async def recent(self, tenant_id: int, limit: int = 20) -> list[UsageEvent]:
        query = (
            select(UsageEvent)
            .where(UsageEvent.tenant_id == tenant_id)
            .order_by(UsageEvent.id.desc())
            .limit(limit)
        )
        return list((await self.session.execute(query)).scalars())

    async def latency_percentile(
        self, assistant_id: int, since: datetime, until: datetime, percent: int
    ) -> int | None:
        """The nearest-rank ``percent``-th percentile of one assistant's call latencies in
        ``[since, until)`` (finished calls, failed ones included, as the rollups count them).

        Two bounded queries answered from the ``(assistant_id, created_at, status, latency_ms)``
        index alone: a count, then the one latency at that rank; no latency list is loaded.
        """
        where = (
            UsageEvent.assistant_id == assistant_id,
            UsageEvent.created_at >= since,
            UsageEvent.created_at < until,
            UsageEvent.status.in_(CALLED),
            UsageEvent.latency_ms.is_not(None),
        )
        count = int(
            (
                await self.session.execute(select(func.count(UsageEvent.id)).where(*where))
            ).scalar_one()
        )
        if not count:
            return None
        rank = -(-percent * count // 100)  # ceil(percent% of count), 1-based
        # Counted from the top: the database's sorter then keeps only the few slowest calls
        # (LIMIT + OFFSET rows) instead of ordering them all.
        query = (
            select(UsageEvent.latency_ms)
            .where(*where)
            .order_by(UsageEvent.latency_ms.desc())
            .offset(count - rank)
            .limit(1)
        )
        value = (await self.session.execute(query)).scalar_one_or_none()
        return int(value) if value is not None else None

    async def unpriced_models(self) -> list[tuple[str, str]]:
        query = (
            select(UsageEvent.provider, UsageEvent.model)
            .where(UsageEvent.priced.is_(False), UsageEvent.status == "settled")
            .distinct()
        )
        return [(p, m) for p, m in (await self.session.execute(query)).all()]


class PriceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> list[ModelPrice]:
        return list((await self.session.execute(select(ModelPrice))).scalars())

    async def upsert(self, price: ModelPrice) -> None:
        query = select(ModelPrice).where(
            ModelPrice.provider == price.provider, ModelPrice.model == price.model
        )
        existing = (await self.session.execute(query)).scalar_one_or_none()
        if existing is None:
            self.session.add(price)
        else:
            existing.input_per_mtok_micros = price.input_per_mtok_micros
            existing.cached_input_per_mtok_micros = price.cached_input_per_mtok_micros
            existing.output_per_mtok_micros = price.output_per_mtok_micros
            existing.currency = price.currency
        await self.session.flush()
