"""Payments, subscriptions, and the record of applied Stripe effects."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Payment, StripeEffect, Subscription, Tenant
from storage.states import PAYMENT_RECEIVED, PaymentKind, PaymentStatus
from storage.states import PAYMENT_STATUSES as PAYMENT_STATUSES


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, payment: Payment) -> Payment:
        self.session.add(payment)
        await self.session.flush()
        return payment

    async def by_id(self, payment_id: int, *, lock: bool = False) -> Payment | None:
        query = select(Payment).where(Payment.id == payment_id)
        return await self._one(query.with_for_update() if lock else query)

    async def by_session(self, session_id: str, *, lock: bool = False) -> Payment | None:
        query = select(Payment).where(Payment.stripe_session_id == session_id)
        return await self._one(query.with_for_update() if lock else query)

    async def by_payment_intent(self, payment_intent: str, *, lock: bool = False) -> Payment | None:
        query = select(Payment).where(Payment.stripe_payment_intent == payment_intent)
        return await self._one(query.with_for_update() if lock else query)

    async def by_charge(self, telegram_charge_id: str, *, lock: bool = False) -> Payment | None:
        """The Stars payment of a Telegram charge (``telegram_payment_charge_id``)."""
        query = select(Payment).where(Payment.telegram_charge_id == telegram_charge_id)
        return await self._one(query.with_for_update() if lock else query)

    async def by_invoice(self, invoice_id: str) -> Payment | None:
        return await self._one(select(Payment).where(Payment.stripe_invoice_id == invoice_id))

    async def subscription_checkout(self, stripe_subscription_id: str) -> Payment | None:
        """The Checkout row that sold a subscription (its first period)."""
        query = select(Payment).where(
            Payment.stripe_subscription_id == stripe_subscription_id,
            Payment.kind == "subscription",
        )
        return await self._one(query.order_by(Payment.id))

    async def pending_urls(self, payment_ids: set[int]) -> dict[int, str]:
        """Payment id → its Checkout URL, for those still waiting to be paid."""
        if not payment_ids:
            return {}
        query = select(Payment.id, Payment.url).where(
            Payment.id.in_(sorted(payment_ids)),
            Payment.status == "pending",
            Payment.url.isnot(None),
        )
        return {int(i): str(u) for i, u in (await self.session.execute(query)).all()}

    async def _one(self, query: Select[Payment]) -> Payment | None:
        return (await self.session.execute(query)).scalars().first()

    async def attach_session(self, payment_id: int, session_id: str, url: str) -> None:
        """Record the created session; only these columns, so a webhook that already found the
        row (by its metadata) and moved it on is never set back."""
        await self.session.execute(
            update(Payment)
            .where(Payment.id == payment_id)
            .values(stripe_session_id=session_id, url=url)
        )

    async def fail(self, payment_id: int, error: str, now: datetime) -> None:
        await self.session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.status == "pending")
            .values(status="failed", error=error, closed_at=now)
        )

    async def list(
        self,
        *,
        tenant_id: int | None = None,
        status: PaymentStatus | None = None,
        kind: PaymentKind | None = None,
        item: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[Payment]:
        query = select(Payment).order_by(Payment.id.desc()).limit(limit)
        if tenant_id is not None:
            query = query.where(Payment.tenant_id == tenant_id)
        if status is not None:
            query = query.where(Payment.status == status)
        if kind is not None:
            query = query.where(Payment.kind == kind)
        if item is not None:
            query = query.where(Payment.item == item)
        if since is not None:
            query = query.where(Payment.created_at >= since)
        return list((await self.session.execute(query)).scalars())


class SubscriptionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find(self, stripe_subscription_id: str) -> Subscription | None:
        query = (
            select(Subscription)
            .where(Subscription.stripe_subscription_id == stripe_subscription_id)
            .with_for_update()
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def of_customer(self, stripe_customer_id: str) -> Subscription | None:
        """The newest subscription of a Stripe customer."""
        query = (
            select(Subscription)
            .where(Subscription.stripe_customer_id == stripe_customer_id)
            .order_by(Subscription.id.desc())
            .limit(1)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def lock_tenant(self, tenant_id: int) -> None:
        """Hold the tenant's row until commit: a tenant's new subscriptions are started one at
        a time (SQLite has a single writer anyway)."""
        query = select(Tenant.id).where(Tenant.id == tenant_id).with_for_update()
        await self.session.execute(query)

    async def current(self, tenant_id: int) -> Subscription | None:
        """The tenant's subscription that is not canceled (the newest, should there be two)."""
        query = (
            select(Subscription)
            .where(Subscription.tenant_id == tenant_id, Subscription.status != "canceled")
            .order_by(Subscription.id.desc())
            .limit(1)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def find_or_add(self, subscription: Subscription) -> Subscription:
        """The row for ``subscription.stripe_subscription_id``, inserting ``subscription`` when
        there is none. Two events of one new subscription may race here (a checkout completed
        and its first invoice paid): the loser of the unique constraint reads the winner's row."""
        existing = await self.find(subscription.stripe_subscription_id)
        if existing is not None:
            return existing
        try:
            async with self.session.begin_nested():
                self.session.add(subscription)
        except IntegrityError:
            existing = await self.find(subscription.stripe_subscription_id)
            assert existing is not None
            return existing
        return subscription


class StripeEffectRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, key: str, *, event_id: str, event_type: str, now: datetime) -> bool:
        """Record ``key`` as applied; False when it already was (by this or another process).

        Meant to run first in the transaction that applies the effect: on PostgreSQL a second
        process inserting the same key waits for the first to commit, then fails here.
        """
        try:
            async with self.session.begin_nested():
                self.session.add(
                    StripeEffect(key=key, event_id=event_id, event_type=event_type, created_at=now)
                )
        except IntegrityError:
            return False
        return True


async def revenue_micros(
    session: AsyncSession, since: datetime, until: datetime, currency: str
) -> int:
    """Money received in ``[since, until)`` in ``currency``: payments paid then, less what was
    refunded of them."""
    query = select(
        func.coalesce(func.sum(Payment.amount_micros - Payment.refunded_micros), 0)
    ).where(
        Payment.paid_at >= since,
        Payment.paid_at < until,
        Payment.currency == currency,
        Payment.status.in_(PAYMENT_RECEIVED),
    )
    return int((await session.execute(query)).scalar_one())
