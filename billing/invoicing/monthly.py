"""The monthly run: an invoice per postpaid or subscribed tenant for a calendar month.

Postpaid: a line per model (tokens in and out, cost in the billing currency × the plan's
markup) plus the plan's base fee. Subscription: the plan's price, plus the usage beyond its
``tokens_included`` (that share of the month's cost × markup); a month Stripe collected (a
Stripe subscription of the tenant ran during it) has no plan line, only that usage, and no
invoice at all without it. A tenant is invoiced only for months it existed in: one created
mid-month pays that month's whole base fee (or plan price), like any month it used the
service. Usage comes from the daily rollups, read for every tenant in one query. Each
tenant's invoice is its own transaction; the unique (tenant, month) key makes a second run, or
a run racing another process, return the invoice already there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.invoicing.arithmetic import scaled
from billing.invoicing.service import InvoiceConfig, LineSpec, insert_invoices
from core.clock import Clock
from core.errors import SwitchboardError
from core.i18n import lazy
from core.money import to_micros
from core.period import Period
from storage.db import Sessions
from storage.models import Plan, Subscription, Tenant
from storage.repositories.catalog import PlanRepository
from storage.repositories.invoices import InvoiceRepository
from storage.repositories.rollups import RollupRepository, Sums
from storage.repositories.tenants import TenantRepository
from storage.states import PlanKind

INVOICED_KINDS: tuple[PlanKind, ...] = ("postpaid", "subscription")
#: Tenants invoiced per transaction: short enough that the year's counter row is not held long.
CHUNK = 200


class NotATenantYet(SwitchboardError):
    """The tenant named was created after the month asked for: it has nothing to pay for it."""

    def __init__(self, tenant: Tenant, label: str) -> None:
        message = lazy(
            "{slug} was created on {day}, after {month}: there is nothing to invoice for that "
            "month.",
            slug=tenant.slug,
            day=tenant.created_at.date().isoformat(),
            month=label,
        )
        super().__init__(str(message), user_message=message)


@dataclass(frozen=True, slots=True)
class Generated:
    number: str
    tenant: str
    created: bool


class MonthlyInvoicing:
    def __init__(self, sessions: Sessions, config: InvoiceConfig, *, clock: Clock) -> None:
        self._sessions = sessions
        self._config = config
        self._clock = clock

    async def generate(
        self, period: Period, *, slug: str | None = None, actor: str
    ) -> list[Generated]:
        """The month's invoices (``period`` is a calendar month), for one tenant or all."""
        label = f"{period.start:%Y-%m}"
        async with self._sessions() as session:
            plans = {p.slug: p for p in await PlanRepository(session).list()}
            tenants = TenantRepository(session)
            everyone = [await tenants.get(slug)] if slug else await tenants.list()
            if slug and not _existed(everyone[0], period):
                raise NotATenantYet(everyone[0], label)
            billed = [t for t in everyone if _invoiced(plans.get(t.plan)) and _existed(t, period)]
            ids = [t.id for t in billed] if slug else None
            usage = await RollupRepository(session).by_tenant_and_model(period, ids)
            stripe_paid = await _stripe_collected(session, period, ids)
        existing = await self._existing(label)
        results: list[Generated] = []
        todo: list[tuple[Tenant, list[LineSpec]]] = []
        for tenant in billed:
            if tenant.id in existing:
                results.append(Generated(existing[tenant.id], tenant.slug, created=False))
                continue
            specs = self.lines(
                tenant,
                plans[tenant.plan],
                usage.get(tenant.id, {}),
                period,
                stripe_paid=tenant.id in stripe_paid,
            )
            if specs:
                todo.append((tenant, specs))
        for start in range(0, len(todo), CHUNK):
            results += await self._chunk(todo[start : start + CHUNK], label, actor)
        return results

    async def _existing(self, label: str) -> dict[int, str]:
        async with self._sessions() as session:
            return await InvoiceRepository(session).numbers_for_period(label)

    async def _chunk(
        self, chunk: Sequence[tuple[Tenant, Sequence[LineSpec]]], label: str, actor: str
    ) -> list[Generated]:
        """Invoices for a chunk of tenants in one transaction; if another process invoiced one
        of them meanwhile (the unique key refuses it), tenant by tenant instead."""
        try:
            async with self._sessions.begin() as session:
                made = await insert_invoices(
                    session, chunk, now=self._clock(), actor=actor, period=label
                )
            return [
                Generated(invoice.number, tenant.slug, created=True)
                for invoice, (tenant, _) in zip(made, chunk, strict=True)
            ]
        except IntegrityError:
            if len(chunk) == 1:
                # Another process invoiced this month first; our number rolled back with us.
                tenant = chunk[0][0]
                other = (await self._existing(label)).get(tenant.id)
                if other is None:
                    raise
                return [Generated(other, tenant.slug, created=False)]
        results: list[Generated] = []
        for item in chunk:
            results += await self._chunk([item], label, actor)
        return results

    def lines(
        self,
        tenant: Tenant,
        plan: Plan,
        usage: dict[tuple[str, str], Sums],
        period: Period,
        *,
        stripe_paid: bool = False,
    ) -> list[LineSpec]:
        """The month's lines; ``stripe_paid``: Stripe collected the plan's price for it."""
        currency = tenant.billing_currency
        month = f"{period.start:%B %Y}"
        specs: list[LineSpec] = []
        if plan.kind == "postpaid":
            for (provider, model), sums in sorted(usage.items()):
                cost = scaled(self._cost_micros(sums), plan.markup_ppm, currency)
                if cost == 0 and not sums.input_tokens and not sums.output_tokens:
                    continue
                specs.append(
                    LineSpec(
                        f"{model} ({provider}), {month}: {sums.input_tokens:,} input + "
                        f"{sums.output_tokens:,} output tokens",
                        cost,
                    )
                )
            if plan.base_fee_micros:
                specs.append(LineSpec(f"{plan.name} base fee, {month}", plan.base_fee_micros))
            return specs
        if not stripe_paid:
            specs.append(LineSpec(f"{plan.name} plan, {month}", plan.price_micros))
        charged = sum(s.charged_tokens for s in usage.values())
        if plan.tokens_included and charged > plan.tokens_included:
            excess = charged - plan.tokens_included
            cost = sum(self._cost_micros(s) for s in usage.values())
            share = to_micros(Decimal(cost) * excess / charged / 1_000_000)
            amount = scaled(share, plan.markup_ppm, currency)
            if amount:
                specs.append(
                    LineSpec(
                        f"Usage beyond the {plan.tokens_included:,} included tokens, {month}: "
                        f"{excess:,} tokens",
                        amount,
                    )
                )
        return specs

    def _cost_micros(self, sums: Sums) -> int:
        """The cost in the billing currency (USD provider prices at ``USD_TO_BILLING_RATE``)."""
        return int(self._config.conversion.micros(sums.cost))


def _invoiced(plan: Plan | None) -> bool:
    return plan is not None and plan.kind in INVOICED_KINDS


def _bounds(period: Period) -> tuple[datetime, datetime]:
    """The month as [start, end) instants, UTC."""
    start = datetime.combine(period.start, time.min, UTC)
    return start, datetime.combine(period.end + timedelta(days=1), time.min, UTC)


def _existed(tenant: Tenant, period: Period) -> bool:
    """Whether the tenant existed at some time in the month (created before its end)."""
    return tenant.created_at < _bounds(period)[1]


async def _stripe_collected(
    session: AsyncSession, period: Period, tenant_ids: Sequence[int] | None
) -> set[int]:
    """Tenants whose plan Stripe charged for the month: a Stripe subscription of theirs ran
    during it (started before its end, not cancelled before its start). Stripe bills from the
    subscription's own anniversary, so any part of the month it ran is a part Stripe billed."""
    start, end = _bounds(period)
    query = select(Subscription.tenant_id).where(
        Subscription.created_at < end,
        or_(Subscription.canceled_at.is_(None), Subscription.canceled_at >= start),
    )
    if tenant_ids is not None:
        query = query.where(Subscription.tenant_id.in_(tenant_ids))
    return set((await session.execute(query)).scalars())


def last_month(now: datetime) -> tuple[int, int]:
    first = now.date().replace(day=1)
    return (first.year - 1, 12) if first.month == 1 else (first.year, first.month - 1)
