"""The monthly run: an invoice per postpaid or subscribed tenant for a calendar month.

Postpaid: a line per model (tokens in and out, cost in the billing currency × the plan's
markup) plus the plan's base fee. Subscription: the plan's price, plus the usage beyond its
``tokens_included`` (that share of the month's cost × markup). Usage comes from the daily
rollups, read for every tenant in one query. Each tenant's invoice is its own transaction; the
unique (tenant, month) key makes a second run, or a run racing another process, return the
invoice already there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.exc import IntegrityError

from billing.invoice_math import scaled
from billing.invoices import InvoiceConfig, LineSpec, insert_invoices
from core.clock import Clock
from core.money import to_micros
from core.period import Period
from storage.db import Sessions
from storage.models import Plan, Tenant
from storage.repositories.catalog import PlanRepository
from storage.repositories.invoices import InvoiceRepository
from storage.repositories.rollups import RollupRepository, Sums
from storage.repositories.tenants import TenantRepository

INVOICED_KINDS = ("postpaid", "subscription")
#: Tenants invoiced per transaction: short enough that the year's counter row is not held long.
CHUNK = 200


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
            billed = [t for t in everyone if _invoiced(plans.get(t.plan))]
            usage = await RollupRepository(session).by_tenant_and_model(
                period, [t.id for t in billed] if slug else None
            )
        existing = await self._existing(label)
        results: list[Generated] = []
        todo: list[tuple[Tenant, list[LineSpec]]] = []
        for tenant in billed:
            if tenant.id in existing:
                results.append(Generated(existing[tenant.id], tenant.slug, created=False))
                continue
            specs = self.lines(tenant, plans[tenant.plan], usage.get(tenant.id, {}), period)
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
        self, tenant: Tenant, plan: Plan, usage: dict[tuple[str, str], Sums], period: Period
    ) -> list[LineSpec]:
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
        currency = self._config.currency
        micros = Decimal(sums.cost.get(currency, 0))
        if currency != "USD":
            micros += Decimal(sums.cost.get("USD", 0)) * self._config.usd_to_billing_rate
        return int(micros)


def _invoiced(plan: Plan | None) -> bool:
    return plan is not None and plan.kind in INVOICED_KINDS


def last_month(now: datetime) -> tuple[int, int]:
    first = now.date().replace(day=1)
    return (first.year - 1, 12) if first.month == 1 else (first.year, first.month - 1)
