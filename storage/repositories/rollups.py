"""Usage rollups: written with every settled or failed call, read by statistics.

Three grains, each answering its questions without scanning raw events:

- ``usage_daily_global`` (day × assistant × model): the overview, per-day series, models and
  assistants: a few rows per day whatever the number of tenants;
- ``usage_daily`` (day × tenant × assistant × model): one tenant's figures, and which tenants
  used an assistant;
- ``usage_monthly_tenant`` (month × tenant): per-tenant tables over long periods read whole
  months here, and only the edge days of the period from ``usage_daily`` (at most 15 days).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Insert,
    Numeric,
    Select,
    Table,
    bindparam,
    case,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.period import Period, month_bounds
from storage.last_writes import add_last
from storage.models import (
    AssistantTenantMonth,
    UsageDaily,
    UsageDailyGlobal,
    UsageMonthlyTenant,
    UsageSums,
)

_Query = TypeVar("_Query")

SUM_FIELDS = (
    "calls",
    "failed",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "charged_tokens",
    "latency_ms_sum",
)
#: What a finished call adds to each rollup row.
_SUMMED = (*SUM_FIELDS, "cost_micros")


@dataclass(slots=True)
class Sums:
    """Additive usage figures; ``cost`` is micro-units per currency (providers bill in USD,
    ``model_prices`` overrides may use another)."""

    calls: int = 0
    failed: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    charged_tokens: int = 0
    latency_ms_sum: int = 0
    cost: dict[str, int] = field(default_factory=dict)

    def add(self, row: Mapping[str, Any], sign: int = 1) -> None:
        # Spelled out rather than looped over SUM_FIELDS: per-tenant tables fold tens of
        # thousands of rows, and this is most of their Python time.
        self.calls += sign * int(row["calls"] or 0)
        self.failed += sign * int(row["failed"] or 0)
        self.input_tokens += sign * int(row["input_tokens"] or 0)
        self.cached_input_tokens += sign * int(row["cached_input_tokens"] or 0)
        self.output_tokens += sign * int(row["output_tokens"] or 0)
        self.reasoning_tokens += sign * int(row["reasoning_tokens"] or 0)
        self.charged_tokens += sign * int(row["charged_tokens"] or 0)
        self.latency_ms_sum += sign * int(row["latency_ms_sum"] or 0)
        currency = row["cost_currency"]
        self.cost[currency] = self.cost.get(currency, 0) + sign * int(row["cost_micros"] or 0)

    @classmethod
    def of(cls, currency: str, values: Sequence[Any]) -> Sums:
        """From the sums of ``SUM_FIELDS`` then ``cost_micros``, in that order."""
        (calls, failed, tokens_in, cached, tokens_out, reasoning, charged, latency, cost) = (
            int(v or 0) for v in values
        )
        return cls(
            calls,
            failed,
            tokens_in,
            cached,
            tokens_out,
            reasoning,
            charged,
            latency,
            {currency: cost},
        )

    def merge(self, other: Sums) -> None:
        self.calls += other.calls
        self.failed += other.failed
        self.input_tokens += other.input_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.output_tokens += other.output_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.charged_tokens += other.charged_tokens
        self.latency_ms_sum += other.latency_ms_sum
        for currency, micros in other.cost.items():
            self.cost[currency] = self.cost.get(currency, 0) + micros

    @property
    def turns(self) -> int:
        return self.calls + self.failed

    @property
    def mean_latency_ms(self) -> float:
        return self.latency_ms_sum / self.turns if self.turns else 0.0

    @property
    def success_rate(self) -> float:
        return self.calls / self.turns if self.turns else 0.0


@dataclass(frozen=True, slots=True)
class UsageDelta:
    """One finished call, as the rollups count it."""

    day: date
    tenant_id: int
    assistant_id: int
    provider: str
    model: str
    cost_currency: str
    settled: bool
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    charged_tokens: int = 0
    cost_micros: int = 0
    latency_ms: int = 0

    def values(self) -> dict[str, int]:
        return {
            "calls": int(self.settled),
            "failed": int(not self.settled),
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "charged_tokens": self.charged_tokens,
            "cost_micros": self.cost_micros,
            "latency_ms_sum": self.latency_ms,
        }


_KEYS: dict[type[UsageSums], tuple[str, ...]] = {
    UsageDaily: ("day", "tenant_id", "assistant_id", "provider", "model", "cost_currency"),
    UsageDailyGlobal: ("day", "assistant_id", "provider", "model", "cost_currency"),
    UsageMonthlyTenant: ("month", "tenant_id", "cost_currency"),
}


@dataclass(frozen=True, slots=True)
class _RecordStatements:
    """The upserts :meth:`RollupRepository.record` runs, built once per dialect."""

    #: Rows of one tenant: taken where the call is recorded, as its other tenant rows are.
    tenant: tuple[Insert, ...]
    #: The all-tenants row: every settlement of the day shares it (see storage.last_writes).
    shared: Insert


@cache
def _record_statements(dialect: str) -> _RecordStatements:
    """Built with bound parameters and executed with a dict of values: constructing the
    expressions anew for every call cost a fifth of a turn's CPU, and a statement built once
    also hits SQLAlchemy's compiled cache at once."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    sums: dict[type[UsageSums], Insert] = {}
    for model, keys in _KEYS.items():
        table = _table(model)
        upsert = insert(table).values({name: bindparam(name) for name in (*keys, *_SUMMED)})
        sums[model] = upsert.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: table.c[name] + upsert.excluded[name] for name in _SUMMED},
        )
    table = _table(AssistantTenantMonth)
    latest = func.max if dialect == "sqlite" else func.greatest
    upsert = insert(table).values(
        {name: bindparam(name) for name in ("month", "assistant_id", "tenant_id", "last_day")}
    )
    used = upsert.on_conflict_do_update(
        index_elements=["month", "assistant_id", "tenant_id"],
        set_={"last_day": latest(table.c.last_day, upsert.excluded.last_day)},
    )
    return _RecordStatements(
        tenant=(sums[UsageDaily], sums[UsageMonthlyTenant], used),
        shared=sums[UsageDailyGlobal],
    )


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def _sum_columns(table: type[UsageSums]) -> list[Any]:
    return [func.sum(getattr(table, name)).label(name) for name in (*SUM_FIELDS, "cost_micros")]


class RollupRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- writing -------------------------------------------------------------------------------

    async def record(self, delta: UsageDelta) -> None:
        """Add one call to the rollups (an upsert each), in the caller's transaction: the
        tenant's rows at once, the all-tenants row as the transaction's last statement."""
        dialect = self.session.get_bind().dialect.name
        params: dict[str, Any] = {
            **delta.values(),
            "day": delta.day,
            "month": delta.day.replace(day=1),
            "tenant_id": delta.tenant_id,
            "assistant_id": delta.assistant_id,
            "provider": delta.provider,
            "model": delta.model,
            "cost_currency": delta.cost_currency,
            "last_day": delta.day,
        }
        statements = _record_statements(dialect)
        for statement in statements.tenant:
            await self.session.execute(statement, params)
        await add_last(
            self.session,
            statements.shared,
            params,
            key=(UsageDailyGlobal.__tablename__, *(params[k] for k in _KEYS[UsageDailyGlobal])),
            summed=_SUMMED,
        )

    # -- reading -------------------------------------------------------------------------------

    async def overall(self, period: Period) -> Sums:
        query = select(UsageDailyGlobal.cost_currency, *_sum_columns(UsageDailyGlobal))
        query = _in_period(query, UsageDailyGlobal.day, period).group_by(
            UsageDailyGlobal.cost_currency
        )
        return _fold(await self._rows(query))

    async def per_day(self, period: Period, tenant_id: int | None = None) -> dict[date, Sums]:
        """Every day of the period (zeros included), overall or for one tenant."""
        table: type[UsageDaily] | type[UsageDailyGlobal] = (
            UsageDailyGlobal if tenant_id is None else UsageDaily
        )
        query = select(table.day, table.cost_currency, *_sum_columns(table))
        query = _in_period(query, table.day, period).group_by(table.day, table.cost_currency)
        if tenant_id is not None:
            query = query.where(UsageDaily.tenant_id == tenant_id)
        series = {day: Sums() for day in period.days}
        for row in await self._rows(query):
            series[_as_date(row["day"])].add(row)
        return series

    async def by_model(
        self, period: Period, tenant_id: int | None = None
    ) -> dict[tuple[str, str], Sums]:
        table: type[UsageDaily] | type[UsageDailyGlobal] = (
            UsageDailyGlobal if tenant_id is None else UsageDaily
        )
        keys = (table.provider, table.model, table.cost_currency)
        query = _in_period(select(*keys, *_sum_columns(table)), table.day, period).group_by(*keys)
        if tenant_id is not None:
            query = query.where(UsageDaily.tenant_id == tenant_id)
        result: dict[tuple[str, str], Sums] = defaultdict(Sums)
        for row in await self._rows(query):
            result[(row["provider"], row["model"])].add(row)
        return dict(result)

    async def by_tenant_and_model(
        self, period: Period, tenant_ids: Sequence[int] | None = None
    ) -> dict[int, dict[tuple[str, str], Sums]]:
        """Per tenant id, per (provider, model): the period's sums, in one grouped query (the
        monthly invoice run reads every tenant at once)."""
        daily = UsageDaily
        keys = (daily.tenant_id, daily.provider, daily.model, daily.cost_currency)
        query = _in_period(select(*keys, *_sum_columns(UsageDaily)), UsageDaily.day, period)
        if tenant_ids is not None:
            query = query.where(UsageDaily.tenant_id.in_(tenant_ids))
        result: dict[int, dict[tuple[str, str], Sums]] = defaultdict(dict)
        for row in await self._rows(query.group_by(*keys)):
            per_model = result[int(row["tenant_id"])]
            key = (row["provider"], row["model"])
            if key not in per_model:
                per_model[key] = Sums()
            per_model[key].add(row)
        return dict(result)

    async def by_assistant(self, period: Period) -> dict[int, tuple[Sums, int]]:
        """Per assistant id: its sums and how many tenants used it in the period."""
        keys = (UsageDailyGlobal.assistant_id, UsageDailyGlobal.cost_currency)
        query = select(*keys, *_sum_columns(UsageDailyGlobal))
        query = _in_period(query, UsageDailyGlobal.day, period).group_by(*keys)
        sums: dict[int, Sums] = defaultdict(Sums)
        for row in await self._rows(query):
            sums[int(row["assistant_id"])].add(row)
        # A tenant used the assistant in the period if it did in a month wholly inside it, or
        # in the first (partial) month on or after the period's start: periods end at a
        # month's end or today, so the last day of use in each month settles it.
        first_month = period.start.replace(day=1)
        used = AssistantTenantMonth
        tenants_query = (
            select(used.assistant_id, func.count(func.distinct(used.tenant_id)))
            .where(
                used.month >= first_month,
                used.month <= period.end,
                (used.month > first_month) | (used.last_day >= period.start),
            )
            .group_by(used.assistant_id)
        )
        tenants = {int(a): int(n) for a, n in (await self.session.execute(tenants_query)).all()}
        return {aid: (s, tenants.get(aid, 0)) for aid, s in sums.items()}

    async def by_tenant(
        self, period: Period, today: date, tenant_ids: Sequence[int] | None = None
    ) -> dict[int, Sums]:
        """Per tenant id (all, or ``tenant_ids``): whole months from the monthly rollup, edge
        days from the daily one, summed in one query (the database folds ten thousand tenants
        faster than Python)."""
        rows = self._tenant_rows(period, today, tenant_ids)
        if rows is None:
            return {}
        fields = (*SUM_FIELDS, "cost_micros")
        query = select(
            rows.c.tenant_id, rows.c.cost_currency, *(func.sum(rows.c[f]) for f in fields)
        ).group_by(rows.c.tenant_id, rows.c.cost_currency)
        result: dict[int, Sums] = {}
        for tenant_id, currency, *values in await self.session.execute(query):
            sums = result.get(tenant_id)
            if sums is None:
                result[tenant_id] = Sums.of(currency, values)
            else:
                sums.merge(Sums.of(currency, values))
        return result

    async def top_tenants(
        self, period: Period, today: date, *, currency: str, usd_rate: Decimal, limit: int
    ) -> dict[int, Sums]:
        """The ``limit`` tenants that cost most in ``currency`` (USD at ``usd_rate``), ranked
        by the database so that only their rows come back."""
        rows = self._tenant_rows(period, today, None)
        if rows is None:
            return {}
        # Ranking only: the amounts shown are converted from the sums by billing.conversion.
        # The rate is bound as an exact decimal, as that module applies it.
        rate = literal(usd_rate if currency != "USD" else Decimal(0), Numeric(30, 12))
        billed = func.sum(
            case(
                (rows.c.cost_currency == currency, rows.c.cost_micros),
                (rows.c.cost_currency == "USD", rows.c.cost_micros * rate),
                else_=0,
            )
        )
        query = (
            select(rows.c.tenant_id)
            .group_by(rows.c.tenant_id)
            .order_by(billed.desc(), rows.c.tenant_id)
            .limit(limit)
        )
        ids = [int(t) for (t,) in await self.session.execute(query)]
        return await self.by_tenant(period, today, ids) if ids else {}

    def _tenant_rows(
        self, period: Period, today: date, tenant_ids: Sequence[int] | None
    ) -> Any | None:
        """The signed rows whose sums per tenant are the period's figures (see WindowPlan)."""
        plan = WindowPlan.for_period(period, today)
        fields = (*SUM_FIELDS, "cost_micros")
        parts: list[Any] = []
        if plan.months:
            monthly = UsageMonthlyTenant
            query = select(
                monthly.tenant_id.label("tenant_id"),
                monthly.cost_currency.label("cost_currency"),
                *(getattr(monthly, f).label(f) for f in fields),
            ).where(monthly.month.in_(plan.months))
            if tenant_ids is not None:
                query = query.where(monthly.tenant_id.in_(tenant_ids))
            parts.append(query)
        for (first, last), sign in [(r, 1) for r in plan.add] + [(r, -1) for r in plan.subtract]:
            query = select(
                UsageDaily.tenant_id.label("tenant_id"),
                UsageDaily.cost_currency.label("cost_currency"),
                *((sign * getattr(UsageDaily, f)).label(f) for f in fields),
            ).where(UsageDaily.day >= first, UsageDaily.day <= last)
            if tenant_ids is not None:
                query = query.where(UsageDaily.tenant_id.in_(tenant_ids))
            parts.append(query)
        return union_all(*parts).subquery() if parts else None

    async def _rows(self, query: Select[Any]) -> list[Mapping[str, Any]]:
        return list((await self.session.execute(query)).mappings())


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """How to sum a period per tenant: whole ``months``, plus the ``add`` day ranges, minus the
    ``subtract`` ones. Rows after ``today`` do not exist, so this month's row is month-to-date."""

    months: tuple[date, ...]
    add: tuple[tuple[date, date], ...]
    subtract: tuple[tuple[date, date], ...]

    @classmethod
    def for_period(cls, period: Period, today: date) -> WindowPlan:
        end = min(period.end, today)
        months: list[date] = []
        add: list[tuple[date, date]] = []
        subtract: list[tuple[date, date]] = []
        cursor = period.start.replace(day=1)
        while cursor <= end:
            first, last = month_bounds(cursor.year, cursor.month)
            inside_first, inside_last = max(first, period.start), min(last, end)
            # Days of this month with data that the period leaves out, before and after it.
            before = (first, inside_first - timedelta(days=1)) if inside_first > first else None
            with_data = min(last, today)
            after = (
                (inside_last + timedelta(days=1), with_data) if inside_last < with_data else None
            )
            outside = [r for r in (before, after) if r is not None]
            inside_days = (inside_last - inside_first).days + 1
            outside_days = sum((b - a).days + 1 for a, b in outside)
            if not outside:
                months.append(first)
            elif outside_days < inside_days:
                months.append(first)
                subtract.extend(outside)
            else:
                add.append((inside_first, inside_last))
            cursor = last + timedelta(days=1)
        return cls(tuple(months), tuple(add), tuple(subtract))


def _in_period(query: _Query, column: Any, period: Period) -> _Query:
    return query.where(column >= period.start, column <= period.end)  # type: ignore[attr-defined, no-any-return]


def _fold(rows: Iterable[Mapping[str, Any]]) -> Sums:
    total = Sums()
    for row in rows:
        total.add(row)
    return total


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
