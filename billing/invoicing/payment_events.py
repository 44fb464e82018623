"""Webhook effects on invoices: their Checkout Session paid, or its charge refunded.

Called from :mod:`billing.stripe.checkout_events` inside the transaction that records the effect, so
an invoice is marked paid once however often Stripe delivers the event.
"""

from __future__ import annotations

from billing.amounts import price_label
from billing.invoicing.recipients import tenant_chats
from billing.invoicing.service import snapshot
from billing.notices import Notice
from billing.stripe.effects import EffectContext
from storage.models import Payment, Tenant
from storage.repositories.admins import AuditRepository
from storage.repositories.invoices import InvoiceRepository
from storage.states import INVOICE_CLOSED


async def invoice_paid(ctx: EffectContext, payment: Payment, tenant: Tenant) -> None:
    invoice = await InvoiceRepository(ctx.session).find(payment.item, lock=True)
    if invoice is None or invoice.tenant_id != tenant.id:
        await ctx.alert(
            "invoice_unmatched", tenant,
            f"Stripe took {price_label(payment.amount_micros, payment.currency)} from "
            f"{tenant.slug} for invoice {payment.item}, which is not one of theirs here.",
        )  # fmt: skip
        return
    if invoice.status in INVOICE_CLOSED:
        # Paid by hand meanwhile, or cancelled after the link went out: money to give back.
        await ctx.alert(
            "invoice_paid_twice", tenant,
            f"{tenant.slug} paid {invoice.number} through Stripe but it is {invoice.status}: "
            "refund the payment in the Stripe dashboard.",
        )  # fmt: skip
        return
    before = snapshot(invoice)
    invoice.status, invoice.paid_at = "paid", ctx.now
    await AuditRepository(ctx.session).record(
        "stripe",
        "invoice.paid",
        invoice.number,
        before,
        snapshot(invoice),
        tenant_id=invoice.tenant_id,
    )
    total = price_label(invoice.total_micros, invoice.currency)
    text = f"Invoice {invoice.number} is paid: {total}. Thank you."
    for address in await tenant_chats(ctx.session, tenant.id):
        ctx.notices.append(Notice(address, text))


async def invoice_refunded(ctx: EffectContext, payment: Payment, refunded: str) -> None:
    """A refund puts a paid invoice back to unpaid (``sent``, or ``overdue`` past its due date)
    with a note; its next send makes a new pay link."""
    invoice = await InvoiceRepository(ctx.session).find(payment.item, lock=True)
    if invoice is None or invoice.status != "paid":
        return
    before = snapshot(invoice)
    overdue = invoice.due_at is not None and invoice.due_at < ctx.now
    invoice.status, invoice.paid_at = ("overdue" if overdue else "sent"), None
    note = f"{ctx.now:%Y-%m-%d}: payment refunded through Stripe ({refunded})."
    invoice.notes = f"{invoice.notes}\n{note}" if invoice.notes else note
    await AuditRepository(ctx.session).record(
        "stripe",
        "invoice.refunded",
        invoice.number,
        before,
        snapshot(invoice),
        tenant_id=invoice.tenant_id,
    )
