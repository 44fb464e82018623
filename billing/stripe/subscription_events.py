"""Effects of subscription events: started, a period paid (tokens granted), a renewal failed,
ended.

Stripe may deliver a new subscription's first ``invoice.paid`` before its
``checkout.session.completed``; both find or create the subscription row (the metadata we set on
the session is copied onto the subscription and its invoices), so either order ends the same.

What a chat is told is written in its reader's language (:func:`reader`), chosen when the
notice is written into the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from billing.amounts import from_minor, price_label
from billing.invoicing.delivery import deliver_document
from billing.invoicing.service import issue_receipt, receipt_description
from billing.notices import Notice, english, price_for, reader_translator, tenant_addresses
from billing.stripe.effects import EffectContext, StripeObject, metadata, number, text
from billing.stripe.subscription_state import SubscriptionState, subscription_state
from core.i18n import SOURCE_LANGUAGE, Translator
from storage.models import Payment, Subscription, Tenant
from storage.repositories.catalog import PlanRepository
from storage.repositories.ledger import LedgerRepository
from storage.repositories.payments import PaymentRepository, SubscriptionRepository
from storage.repositories.tenants import TenantRepository
from storage.states import PAYMENT_CREDITABLE, SubscriptionStatus

log = logging.getLogger(__name__)

FALLBACK_PLAN = "prepaid"


async def reader(
    ctx: EffectContext, address: Mapping[str, Any] | None, tenant_id: int
) -> Translator:
    """The translator of whoever reads a notice about ``tenant_id`` at a stored ``address``:
    their ``/language``, else the tenant's, else ``DEFAULT_LANGUAGE`` (the catalogs come with
    the document delivery; English without it)."""
    translators = ctx.documents.issuer.translators if ctx.documents is not None else None
    stored = dict(address) if address is not None else None
    return await reader_translator(ctx.session, translators, stored, tenant_id=tenant_id)


def failed_invoice_key(event_type: str, invoice: StripeObject) -> str:
    """Each failed attempt of an invoice is told (Stripe retries a failing renewal)."""
    return f"{event_type}:{invoice['id']}:{number(invoice, 'attempt_count') or 0}"


async def start_subscription(
    ctx: EffectContext,
    tenant: Tenant,
    checkout: Payment,
    *,
    subscription_id: str,
    customer_id: str | None,
    first_invoice: str | None,
) -> Subscription:
    """The tenant is on the plan ``checkout`` sold from now on, unless the subscription already
    ended, or the tenant already had another one: then this one is cancelled and refunded."""
    repo = SubscriptionRepository(ctx.session)
    subscription = await repo.find(subscription_id)
    if subscription is None:
        # One new subscription of a tenant at a time: two /subscribe links paid at once are
        # told apart here, whichever process receives them.
        await repo.lock_tenant(tenant.id)
        other = await repo.current(tenant.id)
        subscription = await repo.find_or_add(
            Subscription(
                tenant_id=tenant.id,
                plan=checkout.item,
                stripe_subscription_id=subscription_id,
                stripe_customer_id=customer_id,
                status="active",
                currency=checkout.currency.upper(),
                reply_to=checkout.reply_to,
                created_at=ctx.now,
                updated_at=ctx.now,
            )
        )
        if other is not None and other.stripe_subscription_id != subscription_id:
            await _undo_duplicate(ctx, tenant, checkout, subscription, other, first_invoice)
            return subscription
    subscription.stripe_customer_id = subscription.stripe_customer_id or customer_id
    subscription.reply_to = subscription.reply_to or checkout.reply_to
    if subscription.duplicate_of is None and subscription.status != "canceled":
        subscription.status, subscription.updated_at = "active", ctx.now
        tenant.plan = subscription.plan
    return subscription


async def _undo_duplicate(
    ctx: EffectContext,
    tenant: Tenant,
    checkout: Payment,
    subscription: Subscription,
    other: Subscription,
    first_invoice: str | None,
) -> None:
    """A second subscription paid while ``other`` is live: Stripe would charge both every
    month. It grants nothing; it is cancelled now and its first payment refunded."""
    subscription.status, subscription.canceled_at = "canceled", ctx.now
    subscription.updated_at, subscription.duplicate_of = ctx.now, other.id
    checkout.tokens, checkout.closed_at = 0, ctx.now
    checkout.paid_at = checkout.paid_at or ctx.now
    checkout.error = f"second subscription while {other.stripe_subscription_id} is live"
    sub_id = subscription.stripe_subscription_id
    if ctx.api is not None:
        await ctx.api.cancel_subscription(
            sub_id, idempotency_key=f"switchboard-cancel-duplicate-{sub_id}"
        )
    refund = await refund_duplicate(ctx, tenant, checkout, first_invoice)
    price = price_label(checkout.amount_micros, checkout.currency)
    if ctx.api is None:
        done = f"Cancel {sub_id} and refund its {price} in the Stripe dashboard"
    elif refund is None:
        done = f"{sub_id} was cancelled at Stripe; its first payment is refunded when it is seen"
    else:
        done = f"{sub_id} was cancelled at Stripe and its {price} refunded ({refund})"
    await ctx.alert(
        "duplicate_subscription",
        tenant,
        f"{tenant.slug} paid a second subscription ({checkout.item}) while "
        f"{other.stripe_subscription_id} ({other.plan}) is live. {done}; no tokens granted.",
    )
    t = await reader(ctx, checkout.reply_to, checkout.tenant_id)
    ctx.tell(
        checkout.reply_to,
        tenant_id=checkout.tenant_id,
        text=t(
            "This organisation already subscribes to the {plan} plan, so the second "
            "subscription ({item}) was cancelled and its payment of {price} is refunded; "
            "nothing was added.",
            plan=other.plan,
            item=checkout.item,
            price=price_for(t, checkout.amount_micros, checkout.currency),
        ),
    )


async def refund_duplicate(
    ctx: EffectContext, tenant: Tenant, checkout: Payment, invoice_id: str | None
) -> str | None:
    """Refund the first payment of a duplicate subscription, once: the refund's id, or None
    when the payment is not known yet (its ``invoice.paid`` refunds it) or cannot be made."""
    if ctx.api is None or invoice_id is None or checkout.status == "refunded":
        return None
    intent = checkout.stripe_payment_intent or await ctx.api.invoice_payment_intent(invoice_id)
    if intent is None:
        return None  # a zero invoice: nothing was charged
    refund = await ctx.api.refund(
        intent,
        idempotency_key=f"switchboard-refund-duplicate-{intent}",
        metadata={"tenant": tenant.slug, "payment": str(checkout.id), "reason": "duplicate"},
    )
    checkout.stripe_payment_intent = intent
    checkout.status, checkout.closed_at = "refunded", ctx.now
    checkout.refunded_micros = checkout.amount_micros
    return refund


async def _subscription_of(
    ctx: EffectContext,
    subscription_id: str,
    meta: Mapping[str, str],
    customer_id: str | None,
    *,
    first_invoice: str | None = None,
) -> tuple[Subscription, Tenant] | None:
    """Our subscription row, created if this event is the first we hear of a subscription our
    own Checkout Session started (its metadata names our ``payments`` row); None when the
    subscription is not one of ours."""
    tenant_repo = TenantRepository(ctx.session)
    found = await SubscriptionRepository(ctx.session).find(subscription_id)
    if found is not None:
        return found, await tenant_repo.by_id(found.tenant_id)
    checkout = await _checkout_row(ctx, subscription_id, meta)
    if checkout is None:
        log.info("subscription %s is not one of ours; ignored", subscription_id)
        return None
    tenant = await tenant_repo.by_id(checkout.tenant_id)
    subscription = await start_subscription(
        ctx,
        tenant,
        checkout,
        subscription_id=subscription_id,
        customer_id=customer_id,
        first_invoice=first_invoice,
    )
    return subscription, tenant


async def _checkout_row(
    ctx: EffectContext, subscription_id: str, meta: Mapping[str, str]
) -> Payment | None:
    """The subscription Checkout row the metadata names, if it really is the one that sold
    this subscription: metadata alone (tenant, plan) is anyone's to write."""
    row_id = meta.get("payment", "")
    checkout = None
    if row_id.isdigit():
        checkout = await PaymentRepository(ctx.session).by_id(int(row_id), lock=True)
    if checkout is None or checkout.kind != "subscription":
        return None
    tenant = await TenantRepository(ctx.session).by_id(checkout.tenant_id)
    if (meta.get("tenant"), meta.get("plan")) != (tenant.slug, checkout.item):
        return None
    if checkout.stripe_subscription_id not in (None, subscription_id):
        return None
    checkout.stripe_subscription_id = subscription_id
    return checkout


def _invoice_subscription(invoice: StripeObject) -> tuple[str | None, dict[str, str]]:
    """The subscription an invoice bills and its metadata, in the current API shape
    (``parent.subscription_details``) or the older one (``subscription``)."""
    current = text(invoice, "parent", "subscription_details", "subscription")
    if current is not None:
        return current, metadata(invoice, "parent", "subscription_details")
    return text(invoice, "subscription"), metadata(invoice, "subscription_details")


async def _invoice_payment_intent(ctx: EffectContext, invoice: StripeObject) -> str | None:
    """The payment intent that paid ``invoice``, so that its refund finds the period.

    API versions before 2025-03-31 put it on the invoice; later ones list it in ``payments``,
    which is includable (absent from events unless expanded): then it is asked of Stripe.
    """
    older = text(invoice, "payment_intent")
    if older is not None:
        return older
    payments = invoice.get("payments")
    for item in payments.get("data", []) if isinstance(payments, Mapping) else []:
        if isinstance(item, Mapping):
            found = text(item, "payment", "payment_intent")
            if found is not None:
                return found
    if ctx.api is None or not number(invoice, "amount_paid"):
        return None
    return await ctx.api.invoice_payment_intent(str(invoice["id"]))


async def on_invoice_paid(ctx: EffectContext, invoice: StripeObject) -> None:
    """A subscription period is paid: grant the plan's ``tokens_included`` (once per invoice),
    if the subscription is ours and the amount is what it was sold for."""
    subscription_id, meta = _invoice_subscription(invoice)
    if subscription_id is None:
        return  # a one-off invoice: not a subscription's
    first = invoice.get("billing_reason") == "subscription_create"
    found = await _subscription_of(
        ctx,
        subscription_id,
        meta,
        text(invoice, "customer"),
        first_invoice=str(invoice["id"]) if first else None,
    )
    if found is None:
        await _unknown_subscription_paid(ctx, invoice, subscription_id, meta)
        return
    subscription, tenant = found
    if subscription.duplicate_of is not None:
        await _duplicate_paid(ctx, invoice, subscription, tenant, meta)
        return
    plan = await PlanRepository(ctx.session).find(subscription.plan)
    problem = await _amount_problem(ctx, invoice, subscription)
    if plan is None or problem is not None:
        await ctx.alert(
            "amount_mismatch",
            tenant,
            f"Subscription invoice {invoice['id']} of {tenant.slug} NOT credited: "
            f"{problem or f'plan {subscription.plan!r} is gone'}. Check it in the Stripe "
            "dashboard.",
        )
        return
    payment = await _invoice_payment(ctx, invoice, subscription, meta)
    payment.tokens = plan.tokens_included
    payment.stripe_payment_intent = (
        await _invoice_payment_intent(ctx, invoice) or payment.stripe_payment_intent
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
    # The period's invoice, with the grant it records: once per Stripe invoice, as the grant.
    receipt = await issue_receipt(
        ctx.session, tenant, payment, receipt_description(payment, plan.name), now=ctx.now,
        issuer_country=ctx.issuer_country,
    )  # fmt: skip
    if subscription.status != "canceled":
        subscription.status, subscription.updated_at = "active", ctx.now
        tenant.plan = subscription.plan
    t = await reader(ctx, subscription.reply_to, tenant.id)
    await deliver_document(
        ctx,
        receipt,
        payer=subscription.reply_to,
        payer_text=t(
            "Payment received: {plan} plan, +{tokens} tokens, balance {balance}. Receipt {number}.",
            plan=plan.name,
            tokens=t.number(plan.tokens_included),
            balance=t.number(entry.balance_after),
            number=receipt.number,
        ),
    )


async def _amount_problem(
    ctx: EffectContext, invoice: StripeObject, subscription: Subscription
) -> str | None:
    """Why a paid invoice does not pay this subscription's period: it must be the price the
    subscription was sold at (its Checkout row; the plan's price if that row is gone), in its
    currency. We never prorate or discount, so anything else is not a period we sold."""
    currency = str(invoice.get("currency") or "").upper()
    paid = number(invoice, "amount_paid")
    checkout = await PaymentRepository(ctx.session).subscription_checkout(
        subscription.stripe_subscription_id
    )
    if checkout is not None:
        expected, expected_currency = checkout.amount_micros, checkout.currency.upper()
    else:
        plan = await PlanRepository(ctx.session).find(subscription.plan)
        if plan is None:
            return f"plan {subscription.plan!r} is gone"
        expected, expected_currency = plan.price_micros, plan.currency.upper()
    wanted = price_label(expected, expected_currency)
    if paid is None or not currency:
        return f"Stripe reported no amount, expected {wanted}"
    if currency != expected_currency or from_minor(paid, currency) != expected:
        got = price_label(from_minor(paid, currency), currency)
        return f"Stripe reported {got} paid for the {subscription.plan} plan, expected {wanted}"
    return None


async def _unknown_subscription_paid(
    ctx: EffectContext, invoice: StripeObject, subscription_id: str, meta: Mapping[str, str]
) -> None:
    """A paid invoice of a subscription we did not start: metadata naming one of our tenants
    is not proof of a sale (anyone with the account's key can write it), so admins look."""
    if not meta.get("tenant") and not meta.get("plan"):
        return  # another product on the same Stripe account
    tenant = await TenantRepository(ctx.session).find(meta.get("tenant", ""))
    await ctx.alert(
        "subscription_unknown",
        tenant,
        f"Stripe invoice {invoice['id']} paid subscription {subscription_id} naming tenant "
        f"{meta.get('tenant', '?')!r}, plan {meta.get('plan', '?')!r}, but no subscription "
        "Checkout of ours started it: nothing was granted. Check it in the Stripe dashboard.",
    )


async def _duplicate_paid(
    ctx: EffectContext,
    invoice: StripeObject,
    subscription: Subscription,
    tenant: Tenant,
    meta: Mapping[str, str],
) -> None:
    """A paid invoice of a subscription cancelled as a duplicate grants nothing; its first one
    is refunded if that could not be done when the duplicate was found."""
    checkout = await _checkout_row(ctx, subscription.stripe_subscription_id, meta)
    if checkout is not None and invoice.get("billing_reason") == "subscription_create":
        checkout.stripe_payment_intent = (
            await _invoice_payment_intent(ctx, invoice) or checkout.stripe_payment_intent
        )
        refund = await refund_duplicate(ctx, tenant, checkout, str(invoice["id"]))
        if refund is not None:
            log.info("duplicate subscription %s refunded (%s)", checkout.item, refund)
        return
    await ctx.alert(
        "duplicate_subscription",
        tenant,
        f"Invoice {invoice['id']} was paid for {subscription.stripe_subscription_id}, a second "
        f"subscription of {tenant.slug} cancelled as a duplicate: nothing granted. Refund it "
        "in the Stripe dashboard.",
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
        and first.kind == "subscription"
        and first.tenant_id == subscription.tenant_id
        and invoice.get("billing_reason") == "subscription_create"
        and first.stripe_invoice_id is None
    ):
        first.stripe_invoice_id = str(invoice["id"])
        first.stripe_subscription_id = subscription.stripe_subscription_id
        if first.status in PAYMENT_CREDITABLE:
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
    due = from_minor(number(invoice, "amount_due") or 0, subscription.currency)
    amount = price_label(due, subscription.currency)
    for address in await tenant_addresses(ctx.session, tenant.id):
        t = await reader(ctx, address.to_json(), tenant.id)
        ctx.notices.append(
            Notice(
                address,
                t(
                    "The payment of {amount} for your {plan} plan failed. Please update your "
                    "payment method in the link Stripe emailed you; Stripe will try again.",
                    amount=price_for(t, due, subscription.currency),
                    plan=name,
                ),
            )
        )
    await ctx.alert(
        "payment_failed",
        tenant,
        f"{tenant.slug}'s {name} plan, {amount} (invoice {invoice['id']}, "
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
    if subscription.status == "canceled":
        return  # ended here already (a duplicate we cancelled): told then
    subscription.status, subscription.canceled_at = "canceled", ctx.now
    subscription.updated_at = ctx.now
    other = await SubscriptionRepository(ctx.session).current(tenant.id)
    if tenant.plan == subscription.plan and other is None:
        tenant.plan = FALLBACK_PLAN
    t = await reader(ctx, subscription.reply_to, subscription.tenant_id)
    ctx.tell(subscription.reply_to, ended_text(t, subscription), tenant_id=subscription.tenant_id)


def ended_text(t: Translator, subscription: Subscription) -> str:
    """What the tenant is told when its subscription has ended (it is back on prepaid)."""
    return t(
        "Your {plan} subscription has ended; your tokens stay yours. "
        "Top up with /buy when you need more.",
        plan=subscription.plan,
    )


#: Stripe's subscription statuses as ours: it runs, it waits for a payment, or it is over.
_STATUS: dict[str, SubscriptionStatus] = {
    "active": "active",
    "trialing": "active",
    "past_due": "past_due",
    "unpaid": "past_due",
    "incomplete": "past_due",
    "paused": "past_due",
    "canceled": "canceled",
    "incomplete_expired": "canceled",
}


def updated_key(event_type: str, stripe_subscription: StripeObject) -> str:
    """One effect per state reported: a redelivered event is a duplicate, a later change is
    not (the state applied is read from Stripe, so their order does not matter)."""
    state = subscription_state(stripe_subscription)
    end = state.current_period_end.isoformat() if state.current_period_end else ""
    return (
        f"{event_type}:{stripe_subscription['id']}:{state.status}:"
        f"{int(state.cancel_at_period_end)}:{end}"
    )


async def on_subscription_updated(ctx: EffectContext, stripe_subscription: StripeObject) -> None:
    """Keep our copy in step: status, the period's end, and a cancellation at that end (from
    ``/subscription cancel`` or the Billing Portal). The ending itself comes as
    ``customer.subscription.deleted``."""
    subscription_id = str(stripe_subscription["id"])
    found = await SubscriptionRepository(ctx.session).find(subscription_id)
    if found is None or found.status == "canceled":
        return  # not ours, or over (a later update of an ended one changes nothing)
    state = subscription_state(stripe_subscription)
    if ctx.api is not None:
        # Events arrive late and out of order: what Stripe has now is what we keep.
        state = await ctx.api.subscription(subscription_id)
    was_cancelling = found.cancel_at_period_end
    apply_state(found, state, ctx.now)
    if found.cancel_at_period_end != was_cancelling:
        t = await reader(ctx, found.reply_to, found.tenant_id)
        ctx.tell(found.reply_to, cancellation_text(found, t), tenant_id=found.tenant_id)


def apply_state(subscription: Subscription, state: SubscriptionState, now: datetime) -> None:
    """Stripe's reported state onto our row (an ended row stays ended)."""
    status = _STATUS.get(state.status)
    if status is not None and subscription.status != "canceled":
        subscription.status = status
    subscription.cancel_at_period_end = state.cancel_at_period_end
    if state.current_period_end is not None:
        subscription.current_period_end = state.current_period_end
    subscription.updated_at = now


def cancellation_text(subscription: Subscription, t: Translator | None = None) -> str:
    """What the tenant is told when a cancellation at the period's end is set or undone, in
    ``t``'s language (English without one)."""
    t = t or english()
    plan = subscription.plan
    end = subscription.current_period_end
    if end is None:
        if subscription.cancel_at_period_end:
            return t(
                "Your {plan} plan will not renew: it ends at the end of the paid period, and "
                "its tokens stay yours. /subscription shows it.",
                plan=plan,
            )
        return t("Your {plan} plan renews again at the end of the paid period.", plan=plan)
    day = day_text(t, end)
    if subscription.cancel_at_period_end:
        return t(
            "Your {plan} plan will not renew: it ends on {date}, and its tokens stay yours. "
            "/subscription shows it.",
            plan=plan,
            date=day,
        )
    return t("Your {plan} plan renews again on {date}.", plan=plan, date=day)


def day_text(t: Translator, at: datetime) -> str:
    """``2026-12-04`` in English as always; ``4 décembre 2026`` / ``4. Dezember 2026``."""
    return f"{at:%Y-%m-%d}" if t.language == SOURCE_LANGUAGE else t.date(at)
