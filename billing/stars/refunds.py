"""Taking a refunded Stars payment back, once.

``/payments refund ID`` asks Telegram (``refundStarPayment``); its ``True`` is the
confirmation, and so is a ``refunded_payment`` message Telegram sends for a refund made
elsewhere. Either way :func:`take_back` runs in one transaction with the payment row locked:
the row becomes ``refunded``, the ledger gets one ``refund`` entry (reference
``stars-refund:<payment id>``, unique), the receipt a credit note, and the chat a notice.
A payment already refunded changes nothing, however many confirmations arrive.
"""

from __future__ import annotations

from billing.invoicing.service import issue_credit_note
from billing.notices import reader_translator
from billing.stars.amounts import stars_label
from billing.stripe.effects import EffectContext
from core.i18n import Translators
from storage.models import Payment
from storage.repositories.invoices import InvoiceRepository
from storage.repositories.ledger import LedgerRepository


async def take_back(
    ctx: EffectContext, payment: Payment, *, actor: str, translators: Translators | None = None
) -> int | None:
    """Record ``payment`` (locked by the caller) as refunded in full: the tokens taken back
    (0 for a payment that never credited any); None when it already was. The chat's notice is
    in its reader's language (``translators``; English without them)."""
    if payment.status == "refunded":
        return None
    was_paid = payment.status == "paid"
    payment.status, payment.closed_at = "refunded", ctx.now
    payment.refunded_micros = payment.amount_micros
    if not was_paid:
        return 0
    taken = payment.tokens - payment.refunded_tokens
    stars = payment.amount_micros // 1_000_000
    balance = None
    if taken > 0:
        payment.refunded_tokens = payment.tokens
        entry = await LedgerRepository(ctx.session).post(
            payment.tenant_id,
            "refund",
            -taken,
            now=ctx.now,
            reference=f"stars-refund:{payment.id}",
            note=f"refund of {payment.kind} {payment.item} ({stars_label(stars)} refunded)",
            actor=actor,
        )
        balance = entry.balance_after
    invoices = InvoiceRepository(ctx.session)
    receipt = await invoices.receipt_of(payment.id)
    if receipt is not None and await invoices.credited(receipt.id) < receipt.total_micros:
        await issue_credit_note(
            ctx.session, receipt, receipt.total_micros - await invoices.credited(receipt.id),
            now=ctx.now, actor=actor, reason=f"refund in Telegram Stars of {stars_label(stars)}",
            payment_id=payment.id,
        )  # fmt: skip
    if balance is not None:
        t = await reader_translator(
            ctx.session, translators, payment.reply_to, tenant_id=payment.tenant_id
        )
        ctx.tell(
            payment.reply_to,
            tenant_id=payment.tenant_id,
            text=t(
                "Refund processed: {stars} returned, -{tokens} tokens, balance {balance}.",
                stars=t.ngettext("{n} Star", "{n} Stars", stars),
                tokens=t.number(taken),
                balance=t.number(balance),
            ),
        )
    return taken
