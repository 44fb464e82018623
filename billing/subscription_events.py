"""Effects of subscription events: started, a period paid (tokens granted), a renewal failed,
ended.

Stripe may deliver a new subscription's first ``invoice.paid`` before its
``checkout.session.completed``; both find or create the subscription row (the metadata we set on
the session is copied onto the subscription and its invoices), so either order ends the same.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from billing.amounts import from_minor, price_label
from billing.effects import EffectContext, StripeObject, metadata, number, text
from billing.notices import Notice, tenant_addresses
from storage.models import Payment, Subscription, Tenant
from storage.repositories.catalog import PlanRepository
from storage.repositories.ledger import LedgerRepository
from storage.repositories.payments import PaymentRepository, SubscriptionRepository
from storage.repositories.tenants import TenantRepository

log = logging.getLogger(__name__)

FALLBACK_PLAN = "prepaid"


def failed_invoice_key(event_type: str, invoice: StripeObject) -> str:
    """Each failed attempt of an invoice is told (Stripe retries a failing renewal)."""
    return f"{event_type}:{invoice['id']}:{number(invoice, 'attempt_count') or 0}"


async def start_subscription(
    ctx: EffectContext,
    tenant: Tenant,
    *,
    plan: str,
    subscription_id: str,
    customer_id: str | None,
    currency: str,
    reply_to: dict[str, Any] | None,
) -> Subscription:
    """The tenant is on ``plan`` from now on, unless the subscription already ended."""
    subscription = await SubscriptionRepository(ctx.session).find_or_add(
        Subscription(
            tenant_id=tenant.id,
            plan=plan,
            stripe_subscription_id=subscription_id,
            stripe_customer_id=customer_id,
            status="active",
            currency=currency.upper(),
            reply_to=reply_to,
            created_at=ctx.now,
            updated_at=ctx.now,
        )
    )
    subscription.stripe_customer_id = subscription.stripe_customer_id or customer_id
    subscription.reply_to = subscription.reply_to or reply_to
    if subscription.status != "canceled":
        subscription.status, subscription.updated_at = "active", ctx.now
        tenant.plan = subscription.plan
    return subscription


async def _subscription_of(
    ctx: EffectContext, subscription_id: str, meta: Mapping[str, str], customer_id: str | None
) -> tuple[Subscription, Tenant] | None:
    """Our subscription row, created from the Stripe object's metadata if this event is the
    first we hear of it; None when the subscription is not one of ours."""
    tenant_repo = TenantRepository(ctx.session)
    found = await SubscriptionRepository(ctx.session).find(subscription_id)
    if found is not None:
        return found, await tenant_repo.by_id(found.tenant_id)
    tenant = await tenant_repo.find(meta.get("tenant", ""))
    plan = await PlanRepository(ctx.session).find(meta.get("plan", ""))
    if tenant is None or plan is None:
        log.info("subscription %s is not one of ours; ignored", subscription_id)
        return None
    reply_to = None
    row_id = meta.get("payment", "")
    if row_id.isdigit():
        payment = await PaymentRepository(ctx.session).by_id(int(row_id))
        reply_to = payment.reply_to if payment is not None else None
    subscription = await start_subscription(
        ctx,
        tenant,
        plan=plan.slug,
        subscription_id=subscription_id,
        customer_id=customer_id,
        currency=plan.currency,
        reply_to=reply_to,
    )
    return subscription, tenant


def _invoice_subscription(invoice: StripeObject) -> tuple[str | None, dict[str, str]]:
    """The subscription an invoice bills and its metadata, in the current API shape
    (``parent.subscription_details``) or the older one (``subscription``)."""
    current = text(invoice, "parent", "subscription_details", "subscription")
    if current is not None:
        return current, metadata(invoice, "parent", "subscription_details")
    return text(invoice, "subscription"), metadata(invoice, "subscription_details")


def _invoice_payment_intent(invoice: StripeObject) -> str | None:
    older = text(invoice, "payment_intent")
    if older is not None:
        return older
    payments = invoice.get("payments")
    for item in payments.get("data", []) if isinstance(payments, Mapping) else []:
        if isinstance(item, Mapping):
            found = text(item, "payment", "payment_intent")
            if found is not None:
                return found
    return None


async def on_invoice_paid(ctx: EffectContext, invoice: StripeObject) -> None:
    """A subscription period is paid: grant the plan's ``tokens_included`` (once per invoice)."""
    subscription_id, meta = _invoice_subscription(invoice)
    if subscription_id is None:
        return  # a one-off invoice: not a subscription's
    found = await _subscription_of(ctx, subscription_id, meta, text(invoice, "customer"))
    if found is None:
        return
    subscription, tenant = found
    currency = str(invoice.get("currency") or "").upper()
    plan = await PlanRepository(ctx.session).find(subscription.plan)
    if plan is None or currency != subscription.currency:
        await ctx.alert(
            "payment_mismatch",
            tenant,
            f"Subscription invoice {invoice['id']} of {tenant.slug} NOT credited: plan "
            f"{subscription.plan!r}, invoice currency {currency or '?'}, expected "
            f"{subscription.currency}.",
        )
        return
    payment = await _invoice_payment(ctx, invoice, subscription, meta)
    payment.tokens = plan.tokens_included
    payment.stripe_payment_intent = (
        _invoice_payment_intent(invoice) or payment.stripe_payment_intent
    )
    entry = await LedgerRepository(ctx.session).post(
        tenant.id,
        "grant",
        plan.tokens_included,
        now=ctx.now,
        reference=f"stripe-invoice:{invoice['id']}",
        note=f"{plan.name} plan: tokens included in the period paid by invoice {invoice['id']}",
        actor="stripe",
    )
    await ctx.paid_by(tenant, f"{plan.slug} plan, Stripe invoice {invoice['id']}")
    if subscription.status != "canceled":
        subscription.status, subscription.updated_at = "active", ctx.now
        tenant.plan = subscription.plan
    ctx.tell(
        subscription.reply_to,
        f"Payment received: {plan.name} plan, +{plan.tokens_included:,} tokens, "
        f"balance {entry.balance_after:,}.",
    )


async def _invoice_payment(
    ctx: EffectContext, invoice: StripeObject, subscription: Subscription, meta: Mapping[str, str]
) -> Payment:
    """The ``payments`` row of this invoice: the Checkout row for the first period, a new
    ``renewal`` row for later ones."""
    payments = PaymentRepository(ctx.session)
    row_id = meta.get("payment", "")
    first = await payments.by_id(int(row_id), lock=True) if row_id.isdigit() else None
    currency = subscription.currency
    amount = from_minor(number(invoice, "amount_paid") or 0, currency)
    if (
        first is not None
        and invoice.get("billing_reason") == "subscription_create"
        and first.stripe_invoice_id is None
    ):
        first.stripe_invoice_id = str(invoice["id"])
        first.stripe_subscription_id = subscription.stripe_subscription_id
        if first.status in ("pending", "failed", "expired"):
            first.status, first.paid_at, first.error = "paid", ctx.now, None
        return first
    return await payments.add(
        Payment(
            tenant_id=subscription.tenant_id,
            kind="renewal",
            item=subscription.plan,
            tokens=0,
            amount_micros=amount,
            currency=currency,
            status="paid",
            idempotency_key=f"stripe-invoice-{invoice['id']}",
            stripe_invoice_id=str(invoice["id"]),
            stripe_subscription_id=subscription.stripe_subscription_id,
            reply_to=subscription.reply_to,
            requested_by="stripe",
            created_at=ctx.now,
            paid_at=ctx.now,
        )
    )


async def on_invoice_failed(ctx: EffectContext, invoice: StripeObject) -> None:
    """A renewal failed: the subscription is past due; the tenant's chats and the admins are
    told (Stripe retries the charge on its own schedule)."""
    subscription_id, meta = _invoice_subscription(invoice)
    if subscription_id is None:
        return
    found = await _subscription_of(ctx, subscription_id, meta, text(invoice, "customer"))
    if found is None:
        return
    subscription, tenant = found
    if subscription.status != "canceled":
        subscription.status, subscription.updated_at = "past_due", ctx.now
    plan = await PlanRepository(ctx.session).find(subscription.plan)
    name = plan.name if plan else subscription.plan
    amount = price_label(
        from_minor(number(invoice, "amount_due") or 0, subscription.currency), subscription.currency
    )
    for address in await tenant_addresses(ctx.session, tenant.id):
        ctx.notices.append(
            Notice(
                address,
                f"The payment of {amount} for your {name} plan failed. Please update your "
                "payment method in the link Stripe emailed you; Stripe will try again.",
            )
        )
    await ctx.alert(
        "payment_failed",
        tenant,
        f"Payment failed: {tenant.slug}'s {name} plan, {amount} (invoice {invoice['id']}, "
        f"attempt {number(invoice, 'attempt_count') or 1}). The subscription is past due.",
    )


async def on_subscription_deleted(ctx: EffectContext, stripe_subscription: StripeObject) -> None:
    """The subscription ended: the tenant goes back to prepaid (its balance stays)."""
    found = await _subscription_of(
        ctx,
        str(stripe_subscription["id"]),
        metadata(stripe_subscription),
        text(stripe_subscription, "customer"),
    )
    if found is None:
        return
    subscription, tenant = found
    subscription.status, subscription.canceled_at = "canceled", ctx.now
    subscription.updated_at = ctx.now
    other = await SubscriptionRepository(ctx.session).current(tenant.id)
    if tenant.plan == subscription.plan and other is None:
        tenant.plan = FALLBACK_PLAN
    ctx.tell(
        subscription.reply_to,
        f"Your {subscription.plan} subscription has ended; your tokens stay yours. "
        "Top up with /buy when you need more.",
    )
