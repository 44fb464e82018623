"""Effects of Checkout Session and charge events: a pack credited, a subscription started, a
session closed, a refund taken back.

Each runs inside the transaction that records its effect key (see :mod:`billing.stripe.webhook`), so
it is applied once however often, in whatever order, and by however many processes the event
is received.
"""

from __future__ import annotations

import logging

from billing.amounts import from_minor, price_label
from billing.invoicing.delivery import deliver_document
from billing.invoicing.payment_events import invoice_paid, invoice_refunded
from billing.invoicing.service import credit_refund, issue_receipt, receipt_description
from billing.stripe.effects import EffectContext, StripeObject, metadata, number, text
from billing.stripe.subscription_events import reader, start_subscription
from storage.models import Payment, Tenant
from storage.repositories.ledger import LedgerRepository
from storage.repositories.payments import PaymentRepository, SubscriptionRepository
from storage.repositories.tenants import TenantRepository
from storage.states import PAYMENT_CREDITABLE, PAYMENT_RECEIVED

log = logging.getLogger(__name__)


def session_key(event_type: str, obj: StripeObject) -> str:
    """``completed`` (paid) and ``async_payment_succeeded`` are one effect: credit once."""
    if obj.get("payment_status") in ("paid", "no_payment_required"):
        return f"checkout.fulfil:{obj['id']}"
    return f"{event_type}:{obj['id']}"


def refund_key(_event_type: str, obj: StripeObject) -> str:
    """One effect per refunded total: a second partial refund is a new state to apply."""
    return f"charge.refunded:{obj['id']}:{number(obj, 'amount_refunded') or 0}"


async def session_payment(ctx: EffectContext, session: StripeObject) -> Payment | None:
    """Our row for a Checkout Session: by its id, or by the row id in its metadata."""
    payments = PaymentRepository(ctx.session)
    session_id = str(session["id"])
    payment = await payments.by_session(session_id, lock=True)
    if payment is None:
        row_id = metadata(session).get("payment", "")
        if row_id.isdigit():
            payment = await payments.by_id(int(row_id), lock=True)
        if payment is None or payment.stripe_session_id not in (None, session_id):
            log.info("checkout session %s is not one of ours; ignored", session_id)
            return None
        payment.stripe_session_id = session_id
    if payment.url is None and isinstance(session.get("url"), str):
        payment.url = session["url"]
    payment.stripe_payment_intent = text(session, "payment_intent") or payment.stripe_payment_intent
    payment.stripe_subscription_id = text(session, "subscription") or payment.stripe_subscription_id
    return payment


async def on_session_completed(ctx: EffectContext, session: StripeObject) -> None:
    """``checkout.session.completed`` and ``…async_payment_succeeded``: credit a paid session.

    An unpaid completion (a bank debit still on its way) only records the session; its
    ``async_payment_succeeded`` credits it later, or already did if it came first.
    """
    payment = await session_payment(ctx, session)
    if payment is None or session.get("payment_status") not in ("paid", "no_payment_required"):
        return
    if payment.status not in PAYMENT_CREDITABLE:
        return
    tenant = await TenantRepository(ctx.session).by_id(payment.tenant_id)
    problem = _mismatch(payment, tenant, session)
    if problem is not None:
        payment.status, payment.error, payment.closed_at = "failed", problem, ctx.now
        await ctx.alert(
            "payment_mismatch",
            tenant,
            f"Payment NOT credited for {tenant.slug}: {problem} (Checkout Session "
            f"{session['id']}). Check it in the Stripe dashboard and refund or grant by hand.",
        )
        return
    payment.status, payment.paid_at, payment.error = "paid", ctx.now, None
    await ctx.paid_by(tenant, f"{payment.kind} {payment.item}")
    if payment.kind == "invoice":
        await invoice_paid(ctx, payment, tenant)
        return
    if payment.kind == "subscription":
        subscription_id = text(session, "subscription")
        if subscription_id is None:
            log.warning("subscription session %s without a subscription", session["id"])
            return
        await start_subscription(
            ctx,
            tenant,
            payment,
            subscription_id=subscription_id,
            customer_id=text(session, "customer"),
            first_invoice=text(session, "invoice"),
        )
        return
    entry = await LedgerRepository(ctx.session).post(
        tenant.id,
        "purchase",
        payment.tokens,
        now=ctx.now,
        reference=f"stripe:{session['id']}",
        note=f"pack {payment.item} ({price_label(payment.amount_micros, payment.currency)})",
        actor="stripe",
    )
    # Every sale has one invoice, made with the credit it records (so exactly once as well).
    receipt = await issue_receipt(
        ctx.session, tenant, payment, receipt_description(payment), now=ctx.now,
        issuer_country=ctx.issuer_country,
    )  # fmt: skip
    t = await reader(ctx, payment.reply_to, tenant.id)
    await deliver_document(
        ctx,
        receipt,
        payer=payment.reply_to,
        payer_text=t(
            "Payment received: +{tokens} tokens, balance {balance}. Receipt {number}.",
            tokens=t.number(payment.tokens),
            balance=t.number(entry.balance_after),
            number=receipt.number,
        ),
    )
    # A partial refund Stripe delivered before this completion: taken back now it is credited.
    await take_back_refunded(ctx, payment, full=False)
    await deliver_credit_note(ctx, payment)


def _mismatch(payment: Payment, tenant: Tenant, session: StripeObject) -> str | None:
    """Why a paid session must not be credited: it is not what our row says was sold."""
    currency = str(session.get("currency") or "").upper()
    total = number(session, "amount_total")
    expected = price_label(payment.amount_micros, payment.currency)
    if total is None or not currency:
        return f"Stripe reported no amount, expected {expected}"
    if currency != payment.currency.upper() or from_minor(total, currency) != payment.amount_micros:
        got = price_label(from_minor(total, currency), currency)
        return f"Stripe reported {got} for {payment.kind} {payment.item}, expected {expected}"
    named = metadata(session).get("tenant") or session.get("client_reference_id")
    if named and named != tenant.slug:
        return f"the session names tenant {named!r}, our payment row is {tenant.slug!r}'s"
    return None


async def on_session_failed(ctx: EffectContext, session: StripeObject) -> None:
    """``checkout.session.async_payment_failed``: the bank debit did not go through."""
    payment = await session_payment(ctx, session)
    if payment is None or payment.status != "pending":
        return
    payment.status, payment.error, payment.closed_at = "failed", "payment failed", ctx.now
    t = await reader(ctx, payment.reply_to, payment.tenant_id)
    ctx.tell(
        payment.reply_to,
        tenant_id=payment.tenant_id,
        text=t(
            "Your payment for {item} did not go through; nothing was charged or added. "
            "You can try again with /buy.",
            item=payment.item,
        ),
    )


async def on_session_expired(ctx: EffectContext, session: StripeObject) -> None:
    payment = await session_payment(ctx, session)
    if payment is not None and payment.status == "pending":
        payment.status, payment.closed_at = "expired", ctx.now


async def on_charge_refunded(ctx: EffectContext, charge: StripeObject) -> None:
    """Take back the tokens a refunded payment bought, in proportion to the amount refunded.

    The balance may go below zero (tokens already used): a prepaid tenant is then refused until
    topped up. A payment never credited (amount mismatch) only has its refund recorded; one not
    credited *yet* (the refund overtook ``checkout.session.completed``) has it taken back when
    it is credited. Refunds may arrive in any order: what counts is the largest
    ``amount_refunded`` seen, which is Stripe's running total for the charge.
    """
    payment = await _charge_payment(ctx, charge)
    if payment is None:
        await _unmatched_refund(ctx, charge)
        return
    amount, refunded = number(charge, "amount") or 0, number(charge, "amount_refunded") or 0
    currency = str(charge.get("currency") or payment.currency).upper()
    full = bool(charge.get("refunded")) or (amount > 0 and refunded >= amount)
    payment.refunded_micros = max(payment.refunded_micros, from_minor(refunded, currency))
    if full:
        payment.refunded_micros = max(payment.refunded_micros, payment.amount_micros)
    if payment.status not in PAYMENT_RECEIVED or payment.paid_at is None:
        if full:  # nothing credited, and now nothing ever will be
            payment.status, payment.closed_at = "refunded", ctx.now
        return
    if payment.kind == "invoice":
        if full:
            payment.status, payment.closed_at = "refunded", ctx.now
        await invoice_refunded(ctx, payment, price_label(payment.refunded_micros, currency))
        return
    taken = await take_back_refunded(ctx, payment, full=full)
    await deliver_credit_note(ctx, payment)
    if taken and payment.kind in ("subscription", "renewal"):
        tenant = await TenantRepository(ctx.session).by_id(payment.tenant_id)
        await ctx.alert(
            "subscription_refunded",
            tenant,
            f"Stripe refunded {price_label(payment.refunded_micros, currency)} of "
            f"{tenant.slug}'s {payment.item} plan period (invoice {payment.stripe_invoice_id}, "
            f"charge {charge['id']}): {taken:,} tokens taken back. The subscription itself "
            "goes on; cancel it in Stripe if that was meant.",
        )


async def deliver_credit_note(ctx: EffectContext, payment: Payment) -> None:
    """The receipt's credit note for what is newly refunded of ``payment``, if any, delivered
    to the tenant's recipients as its PDF."""
    note = await credit_refund(ctx.session, payment, now=ctx.now)
    if note is not None:
        await deliver_document(ctx, note)


async def _charge_payment(ctx: EffectContext, charge: StripeObject) -> Payment | None:
    """Our row for a charge: by its payment intent (recorded for sessions and for every
    subscription period), or by the row id a pack's payment intent carries in its metadata."""
    payments = PaymentRepository(ctx.session)
    payment = None
    intent = text(charge, "payment_intent")
    if intent is not None:
        payment = await payments.by_payment_intent(intent, lock=True)
    row_id = metadata(charge).get("payment", "")
    if payment is None and row_id.isdigit():
        payment = await payments.by_id(int(row_id), lock=True)
        if payment is not None and payment.stripe_payment_intent not in (None, intent):
            return None  # the metadata names a row another payment intent paid
    if payment is not None:
        payment.stripe_payment_intent = payment.stripe_payment_intent or intent
    return payment


async def _unmatched_refund(ctx: EffectContext, charge: StripeObject) -> None:
    """A refund of a charge no row of ours matches: admins check it if it looks like ours."""
    named = metadata(charge).get("tenant")
    customer = text(charge, "customer")
    subscription = (
        await SubscriptionRepository(ctx.session).of_customer(customer) if customer else None
    )
    if not named and subscription is None:
        return
    tenant = (
        await TenantRepository(ctx.session).by_id(subscription.tenant_id) if subscription else None
    )
    who = repr(named) if named else (tenant.slug if tenant else "?")
    await ctx.alert(
        "refund_unmatched",
        tenant,
        f"Stripe refunded charge {charge['id']} (tenant {who}) but no payment here matches "
        "it; check the ledger by hand.",
    )


async def take_back_refunded(ctx: EffectContext, payment: Payment, *, full: bool) -> int:
    """Take back the share of ``payment.tokens`` that ``payment.refunded_micros`` refunds, less
    what was already taken back: tokens × refunded / amount, rounded down (in the buyer's
    favour), all of them once fully refunded. The tokens taken now (0 if none)."""
    full = full or (payment.amount_micros > 0 and payment.refunded_micros >= payment.amount_micros)
    if full:
        owed = payment.tokens
        payment.status, payment.closed_at = "refunded", ctx.now
    elif payment.amount_micros > 0:
        owed = payment.tokens * payment.refunded_micros // payment.amount_micros
    else:
        owed = 0
    taken = owed - payment.refunded_tokens
    if taken <= 0:
        return 0
    payment.refunded_tokens = owed
    entry = await LedgerRepository(ctx.session).post(
        payment.tenant_id,
        "refund",
        -taken,
        now=ctx.now,
        # refunded_tokens only grows, so each take-back of a payment has its own reference.
        reference=f"stripe-refund:{payment.id}:{owed}",
        note=f"refund of {payment.kind} {payment.item} "
        f"({price_label(payment.refunded_micros, payment.currency)} refunded in all)",
        actor="stripe",
    )
    t = await reader(ctx, payment.reply_to, payment.tenant_id)
    ctx.tell(
        payment.reply_to,
        tenant_id=payment.tenant_id,
        text=t(
            "Refund processed: -{tokens} tokens, balance {balance}.",
            tokens=t.number(taken),
            balance=t.number(entry.balance_after),
        ),
    )
    return taken
