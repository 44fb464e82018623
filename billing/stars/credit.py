"""``successful_payment``: credit a Stars payment exactly once per Telegram charge.

The key is ``payments.telegram_charge_id`` (unique), set in the transaction that writes the
ledger entry (reference ``stars:<charge id>``, unique too), the receipt and the chat notice.
The payload's row is locked first, so two processes given the same update at once take turns:
the second finds the charge recorded and changes nothing; a redelivery after a restart does the
same. A charge the row was not sold for (another currency or amount) is recorded, never
credited, and the admins are alerted: Telegram took the Stars, a person must decide.

A subscription's first payment (``is_first_recurring``) starts a Stars subscription; each
renewal (``is_recurring`` again, a new charge id, the same payload) is a new ``renewal`` row
granting the plan's tokens once per period (ledger reference ``stars-period:<subscription>:<end
of the period>``): a second charge for a period already granted is recorded and alerted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.exc import IntegrityError

from billing.invoicing.service import issue_receipt, receipt_description
from billing.notices import reader_translator
from billing.stars.amounts import STARS_CURRENCY, STARS_PROVIDER, stars_label, stars_to_micros
from billing.stars.payload import payment_id_of
from billing.stripe.effects import EffectContext
from core.clock import Clock
from core.i18n import Translators
from storage.db import Sessions
from storage.models import Payment, Subscription, Tenant
from storage.repositories.admins import AuditRepository
from storage.repositories.catalog import PlanRepository
from storage.repositories.ledger import LedgerRepository
from storage.repositories.payments import PaymentRepository, SubscriptionRepository
from storage.repositories.tenants import TenantRepository
from storage.states import PAYMENT_CREDITABLE

log = logging.getLogger(__name__)

Outcome = Literal["credited", "duplicate", "mismatch", "unknown", "period_granted"]


@dataclass(frozen=True, slots=True)
class StarsCharge:
    """What a ``successful_payment`` says (read leniently: unknown fields are ignored)."""

    charge_id: str
    currency: str
    total_amount: int
    payload: str
    user_id: int
    is_recurring: bool = False
    is_first_recurring: bool = False
    subscription_expiration: datetime | None = None


@dataclass(frozen=True, slots=True)
class Credited:
    outcome: Outcome
    payment_id: int | None = None
    #: Outbox rows written (receipt notice, alerts), to deliver after commit.
    outbox_ids: tuple[int, ...] = ()


class StarsCrediting:
    def __init__(
        self,
        sessions: Sessions,
        *,
        clock: Clock,
        issuer_country: str = "",
        translators: Translators | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._issuer_country = issuer_country
        #: The payer's notice is written in their language (English without catalogs).
        self._translators = translators

    async def credit(self, charge: StarsCharge) -> Credited:
        now = self._clock()
        try:
            async with self._sessions.begin() as session:
                ctx = EffectContext(
                    session, now, charge.charge_id, "successful_payment",
                    issuer_country=self._issuer_country, cause=f"stars:{charge.charge_id}",
                )  # fmt: skip
                outcome, payment_id = await _apply(ctx, charge, self._translators)
                await ctx.settle_told()
        except IntegrityError:
            # Another process recorded the same charge between our look and our write.
            async with self._sessions() as session:
                known = await PaymentRepository(session).by_charge(charge.charge_id)
            if known is None:
                raise
            return Credited("duplicate", known.id)
        log.info("Stars charge %s: %s (payment %s)", charge.charge_id, outcome, payment_id)
        return Credited(outcome, payment_id, tuple(ctx.outbox_ids))


async def _apply(
    ctx: EffectContext, charge: StarsCharge, translators: Translators | None
) -> tuple[Outcome, int | None]:
    payments = PaymentRepository(ctx.session)
    row_id = payment_id_of(charge.payload)
    sold = await payments.by_id(row_id, lock=True) if row_id is not None else None
    known = await payments.by_charge(charge.charge_id)
    if known is not None:
        return "duplicate", known.id
    if sold is None or sold.provider != STARS_PROVIDER:
        await ctx.alert(
            "payment_mismatch",
            None,
            f"Telegram Stars payment {charge.charge_id} ({charge.total_amount} "
            f"{charge.currency}, user {charge.user_id}) names no payment of ours "
            f"(payload {charge.payload[:64]!r}); refund it with /payments or grant by hand.",
        )
        return "unknown", None
    tenant = await TenantRepository(ctx.session).by_id(sold.tenant_id)
    renewal = charge.is_recurring and not charge.is_first_recurring and sold.kind == "subscription"
    if not renewal and sold.telegram_charge_id is None and sold.status in PAYMENT_CREDITABLE:
        payment = sold
    else:
        payment = await payments.add(_another(sold, charge, ctx.now, renewal=renewal))
    payment.telegram_charge_id = charge.charge_id
    payment.telegram_user_id = str(charge.user_id)
    await ctx.session.flush()  # the unique charge id, now: a racing process fails here
    problem = _mismatch(payment, charge)
    if problem is not None:
        payment.status, payment.error, payment.closed_at = "failed", problem, ctx.now
        payment.paid_at = ctx.now
        await ctx.alert(
            "payment_mismatch",
            tenant,
            f"Telegram Stars payment NOT credited for {tenant.slug}: {problem} (charge "
            f"{charge.charge_id}). Refund it with /payments refund {payment.id} or grant by hand.",
        )
        return "mismatch", payment.id
    payment.status, payment.paid_at, payment.error = "paid", ctx.now, None
    await ctx.paid_by(tenant, f"{payment.kind} {payment.item} (Telegram Stars)")
    if payment.kind == "pack":
        await _credit_pack(ctx, tenant, payment, translators)
        return "credited", payment.id
    granted = await _credit_period(ctx, tenant, payment, sold, charge, translators)
    return ("credited" if granted else "period_granted"), payment.id


def _another(sold: Payment, charge: StarsCharge, now: datetime, *, renewal: bool) -> Payment:
    """A new row for a charge the sold row cannot hold: a renewal, or an invoice paid again."""
    return Payment(
        tenant_id=sold.tenant_id,
        kind="renewal" if renewal else sold.kind,
        item=sold.item,
        tokens=sold.tokens,
        # The price the row was sold at, never the charge's: a charge of another amount must
        # show as a mismatch here too, not become the price it is checked against.
        amount_micros=sold.amount_micros,
        currency=STARS_CURRENCY,
        status="pending",
        provider=STARS_PROVIDER,
        idempotency_key=f"stars-charge-{charge.charge_id}"[:100],
        reply_to=sold.reply_to,
        requested_by="telegram",
        created_at=now,
    )


def _mismatch(payment: Payment, charge: StarsCharge) -> str | None:
    """Why a charge must not be credited: it is not what our row sold."""
    expected = payment.amount_micros
    if charge.currency != STARS_CURRENCY:
        return f"paid in {charge.currency!r}, not {STARS_CURRENCY}"
    if charge.total_amount <= 0 or stars_to_micros(charge.total_amount) != expected:
        return (
            f"Telegram reported {charge.total_amount} Stars for {payment.kind} {payment.item}, "
            f"expected {stars_label(expected // 1_000_000)}"
        )
    return None


async def _credit_pack(
    ctx: EffectContext, tenant: Tenant, payment: Payment, translators: Translators | None
) -> None:
    entry = await LedgerRepository(ctx.session).post(
        tenant.id,
        "purchase",
        payment.tokens,
        now=ctx.now,
        reference=f"stars:{payment.telegram_charge_id}",
        note=f"pack {payment.item} ({stars_label(payment.amount_micros // 1_000_000)})",
        actor="telegram",
    )
    receipt = await issue_receipt(
        ctx.session, tenant, payment, receipt_description(payment), now=ctx.now,
        actor="telegram", issuer_country=ctx.issuer_country,
    )  # fmt: skip
    t = await reader_translator(ctx.session, translators, payment.reply_to, tenant_id=tenant.id)
    ctx.tell(
        payment.reply_to,
        tenant_id=payment.tenant_id,
        text=t(
            "Payment received: +{tokens} tokens, balance {balance}. Receipt {number}.",
            tokens=t.number(payment.tokens),
            balance=t.number(entry.balance_after),
            number=receipt.number,
        ),
    )


async def _credit_period(
    ctx: EffectContext,
    tenant: Tenant,
    payment: Payment,
    sold: Payment,
    charge: StarsCharge,
    translators: Translators | None,
) -> bool:
    """A subscription period paid: the subscription started or extended, its tokens granted
    once for the period. False when the period was already granted (nothing added)."""
    subscription = await _subscription(ctx, tenant, payment, sold, charge)
    end = charge.subscription_expiration
    period_key = (
        f"stars-period:{subscription.id}:{int(end.timestamp()) if end else charge.charge_id}"
    )
    ledger = LedgerRepository(ctx.session)
    if await ledger.has_reference(period_key):
        payment.error = "period already granted"
        await ctx.alert(
            "payment_mismatch",
            tenant,
            f"Telegram charged {tenant.slug} again ({charge.charge_id}) for a {payment.item} "
            f"period already granted; no tokens added. Refund it with /payments refund "
            f"{payment.id} if it was a double charge.",
        )
        return False
    plan = await PlanRepository(ctx.session).find(payment.item)
    name = plan.name if plan else payment.item
    entry = await ledger.post(
        tenant.id,
        "grant",
        payment.tokens,
        now=ctx.now,
        reference=period_key,
        note=f"{name} plan: tokens included in the period paid in Stars ({charge.charge_id})",
        actor="telegram",
    )
    if end is not None and (
        subscription.current_period_end is None or end > subscription.current_period_end
    ):
        subscription.current_period_end = end
    if subscription.status == "canceled" and end is not None and end > ctx.now:
        # Telegram renewed it after our hourly sweep had ended it (the renewal reached us past
        # the grace, say after an outage): it is paid for a period still to come, so it runs.
        subscription.status, subscription.canceled_at = "active", None
        await AuditRepository(ctx.session).record(
            "telegram",
            "subscription.resume",
            subscription.stripe_subscription_id,
            {"status": "canceled", "plan": tenant.plan},
            {"status": "active", "plan": subscription.plan, "period_end": end.isoformat()},
            tenant_id=tenant.id,
        )
    if subscription.status != "canceled":
        subscription.status, subscription.updated_at = "active", ctx.now
        tenant.plan = subscription.plan
    receipt = await issue_receipt(
        ctx.session, tenant, payment, receipt_description(payment, name), now=ctx.now,
        actor="telegram", issuer_country=ctx.issuer_country,
    )  # fmt: skip
    t = await reader_translator(
        ctx.session, translators, subscription.reply_to, tenant_id=tenant.id
    )
    ctx.tell(
        subscription.reply_to,
        tenant_id=tenant.id,
        text=t(
            "Payment received: {plan} plan, +{tokens} tokens, balance {balance}. Receipt {number}.",
            plan=name,
            tokens=t.number(payment.tokens),
            balance=t.number(entry.balance_after),
            number=receipt.number,
        ),
    )
    return True


async def _subscription(
    ctx: EffectContext, tenant: Tenant, payment: Payment, sold: Payment, charge: StarsCharge
) -> Subscription:
    """The Stars subscription ``sold`` started (its first charge names it), started now when
    this is that first charge."""
    repo = SubscriptionRepository(ctx.session)
    first_charge = sold.telegram_charge_id or charge.charge_id
    key = f"stars:{first_charge}"
    found = await repo.find(key)
    if found is not None:
        return found
    await repo.lock_tenant(tenant.id)
    return await repo.find_or_add(
        Subscription(
            tenant_id=tenant.id,
            plan=payment.item,
            stripe_subscription_id=key,
            status="active",
            currency=STARS_CURRENCY,
            reply_to=sold.reply_to,
            created_at=ctx.now,
            updated_at=ctx.now,
            current_period_end=charge.subscription_expiration,
            provider=STARS_PROVIDER,
            telegram_user_id=str(charge.user_id),
            telegram_charge_id=first_charge,
        )
    )
