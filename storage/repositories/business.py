"""What ``/stats billing``'s business figures are computed from, each summed or grouped by the
database (see ``admin_commands.business_figures`` for the arithmetic)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditLog, Invoice, Payment, Plan, Subscription, Tenant
from storage.states import PAYMENT_RECEIVED, InvoiceStatus

#: Monthly invoices that bill something (a draft is not sent yet, a cancelled one is void).
_BILLED: tuple[InvoiceStatus, ...] = ("sent", "paid", "overdue")


class BusinessRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def subscription_prices(self) -> list[tuple[str, int]]:
        """``(plan, monthly price in micro-units)`` of each active subscription (a duplicate,
        refunded at once, is not one)."""
        query = (
            select(Subscription.plan, func.coalesce(Plan.price_micros, 0))
            .outerjoin(Plan, Plan.slug == Subscription.plan)
            .where(Subscription.status == "active", Subscription.duplicate_of.is_(None))
        )
        return [(plan, int(price)) for plan, price in (await self.session.execute(query)).all()]

    async def postpaid_invoice_totals(
        self, since: datetime, until: datetime
    ) -> dict[int, list[int]]:
        """Each postpaid tenant's monthly invoice totals issued in ``[since, until)``."""
        query = (
            select(Invoice.tenant_id, Invoice.total_micros)
            .join(Tenant, Tenant.id == Invoice.tenant_id)
            .where(
                Tenant.plan == "postpaid",
                Invoice.kind == "invoice",
                Invoice.period.is_not(None),
                Invoice.status.in_(_BILLED),
                Invoice.issued_at >= since,
                Invoice.issued_at < until,
            )
        )
        totals: dict[int, list[int]] = {}
        for tenant_id, total in (await self.session.execute(query)).all():
            totals.setdefault(int(tenant_id), []).append(int(total))
        return totals

    async def tenants_created(self, since: datetime | None, until: datetime) -> int:
        query = select(func.count(Tenant.id)).where(Tenant.created_at < until)
        if since is not None:
            query = query.where(Tenant.created_at >= since)
        return int((await self.session.execute(query)).scalar_one())

    async def customers(self, until: datetime) -> int:
        """Tenants that existed by ``until`` and are not suspended."""
        query = select(func.count(Tenant.id)).where(
            Tenant.created_at < until, Tenant.status != "suspended"
        )
        return int((await self.session.execute(query)).scalar_one())

    async def churned(self, since: datetime, until: datetime) -> set[int]:
        """Tenants whose subscription ended in ``[since, until)`` with none active now, and
        tenants suspended in it that are still suspended."""
        still_subscribed = select(Subscription.tenant_id).where(Subscription.status == "active")
        ended = select(Subscription.tenant_id).where(
            Subscription.canceled_at >= since,
            Subscription.canceled_at < until,
            Subscription.duplicate_of.is_(None),
            Subscription.tenant_id.not_in(still_subscribed),
        )
        suspended = (
            select(AuditLog.tenant_id)
            .join(Tenant, Tenant.id == AuditLog.tenant_id)
            .where(
                AuditLog.action == "tenant.suspend",
                AuditLog.created_at >= since,
                AuditLog.created_at < until,
                Tenant.status == "suspended",
            )
        )
        ids: set[int | None] = set((await self.session.execute(ended)).scalars())
        ids |= set((await self.session.execute(suspended)).scalars())
        return {int(i) for i in ids if i is not None}

    async def revenue_by_item(self, since: datetime, until: datetime) -> list[tuple[str, str, int]]:
        """``(kind, item, net micro-units)`` of the payments received in ``[since, until)``, less
        what was refunded of them; an invoice payment's item is the paying tenant's plan."""
        net = func.sum(Payment.amount_micros - Payment.refunded_micros)
        query = (
            select(Payment.kind, Payment.item, Tenant.plan, net)
            .join(Tenant, Tenant.id == Payment.tenant_id)
            .where(
                Payment.status.in_(PAYMENT_RECEIVED),
                Payment.paid_at >= since,
                Payment.paid_at < until,
                # Stars (XTR) are another currency: never summed as if they were the billing one.
                Payment.currency != "XTR",
            )
            .group_by(Payment.kind, Payment.item, Tenant.plan)
        )
        rows: dict[tuple[str, str], int] = {}
        for kind, paid_for, plan, total in (await self.session.execute(query)).all():
            # A pack is sold by name; a subscription period by its plan; a paid invoice
            # counts for the plan its tenant is on.
            key = ("pack", paid_for) if kind == "pack" else ("plan", paid_for)
            if kind == "invoice":
                key = ("plan", plan)
            rows[key] = rows.get(key, 0) + int(total or 0)
        return [(kind, name, total) for (kind, name), total in sorted(rows.items())]
