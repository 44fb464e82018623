"""Effects of Checkout Session and charge events: a pack credited, a subscription started, a
session closed, a refund taken back.

Each runs inside the transaction that records its effect key (see :mod:`billing.webhook`), so
it is applied once however often, in whatever order, and by however many processes the event
is received.
"""

from __future__ import annotations

import logging

from billing.amounts import from_minor, price_label
from billing.effects import EffectContext, StripeObject, metadata, number, text
from billing.invoice_events import invoice_paid, invoice_refunded
from billing.subscription_events import start_subscription
from storage.models import Payment, Tenant
from storage.repositories.ledger import LedgerRepository
from storage.repositories.payments import PaymentRepository
from storage.repositories.tenants import TenantRepository

log = logging.getLogger(__name__)

#: Statuses a paid session may still move out of (a lost create answer marks a row failed).
_CREDITABLE = frozenset({"pending", "failed", "expired"})


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
    if payment.status not in _CREDITABLE:
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
            plan=payment.item,
            subscription_id=subscription_id,
            customer_id=text(session, "customer"),
            currency=payment.currency,
            reply_to=payment.reply_to,
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
    ctx.tell(
        payment.reply_to,
        f"Payment received: +{payment.tokens:,} tokens, balance {entry.balance_after:,}.",
    )


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
    ctx.tell(
        payment.reply_to,
        f"Your payment for {payment.item} did not go through; nothing was charged or added. "
        "You can try again with /buy.",
    )


async def on_session_expired(ctx: EffectContext, session: StripeObject) -> None:
    payment = await session_payment(ctx, session)
    if payment is not None and payment.status == "pending":
        payment.status, payment.closed_at = "expired", ctx.now


async def on_charge_refunded(ctx: EffectContext, charge: StripeObject) -> None:
    """Take back the tokens a refunded payment bought, in proportion to the amount refunded.

    The balance may go below zero (tokens already used): a prepaid tenant is then refused until
    topped up. A payment never credited (amount mismatch) only has its refund recorded.
    """
    payments = PaymentRepository(ctx.session)
    payment = None
    intent = text(charge, "payment_intent")
    if intent is not None:
        payment = await payments.by_payment_intent(intent, lock=True)
    row_id = metadata(charge).get("payment", "")
    if payment is None and row_id.isdigit():
        payment = await payments.by_id(int(row_id), lock=True)
    if payment is None:
        if metadata(charge).get("tenant"):
            await ctx.alert(
                "refund_unmatched",
                None,
                f"Stripe refunded charge {charge['id']} (tenant {metadata(charge)['tenant']!r}) "
                "but no payment here matches it; check the ledger by hand.",
            )
        return
    payment.stripe_payment_intent = payment.stripe_payment_intent or intent
    amount, refunded = number(charge, "amount") or 0, number(charge, "amount_refunded") or 0
    currency = str(charge.get("currency") or payment.currency).upper()
    full = bool(charge.get("refunded")) or (amount > 0 and refunded >= amount)
    payment.refunded_micros = from_minor(refunded, currency)
    if payment.status not in ("paid", "refunded"):
        if full:
            payment.status, payment.closed_at = "refunded", ctx.now
        return
    if payment.kind == "invoice":
        if full:
            payment.status, payment.closed_at = "refunded", ctx.now
        await invoice_refunded(ctx, payment, price_label(payment.refunded_micros, currency))
        return
    # A partial refund takes back its share of the tokens, rounded down in the buyer's favour.
    share = payment.tokens * refunded // amount if amount else 0
    owed = payment.tokens if full else share
    taken = owed - payment.refunded_tokens
    if full:
        payment.status, payment.closed_at = "refunded", ctx.now
    if taken <= 0:
        return
    payment.refunded_tokens = owed
    entry = await LedgerRepository(ctx.session).post(
        payment.tenant_id,
        "refund",
        -taken,
        now=ctx.now,
        reference=f"stripe-refund:{charge['id']}:{refunded}",
        note=f"refund of {payment.kind} {payment.item} "
        f"({price_label(payment.refunded_micros, currency)} refunded in all)",
        actor="stripe",
    )
    ctx.tell(
        payment.reply_to,
        f"Refund processed: -{taken:,} tokens, balance {entry.balance_after:,}.",
    )
