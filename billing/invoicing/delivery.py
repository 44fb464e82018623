"""Receipts and credit notes delivered as their PDF (DESIGN §8): to the chats an invoice goes to
(:func:`billing.invoicing.recipients.tenant_chats`) and the tenant's e-mail when SMTP is set,
written into the outbox in the transaction that makes the document, in the tenant's language."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.invoicing.documents import DocumentDelivery
from billing.invoicing.loading import views
from billing.invoicing.pdf import pdf_file_name, render_invoice
from billing.invoicing.recipients import tenant_chats
from billing.invoicing.views import InvoiceView, Issuer
from billing.notices import Notice, address_of
from billing.stripe.effects import EffectContext
from core.envelope import EMAIL_CHANNEL, ChatAddress, OutboundFile
from storage.models import Invoice


def issuer_name(issuer: Issuer) -> str:
    return issuer.name or "us"


async def document_file(view: InvoiceView, issuer: Issuer) -> OutboundFile:
    """The document's PDF, captioned in its tenant's language (``Rechnung INV-…: 5,00 EUR``)."""
    t = issuer.translator(view.tenant.language)
    data = await asyncio.to_thread(render_invoice, view, issuer)
    return OutboundFile(pdf_file_name(view), data, "application/pdf", caption=view.caption(t))


async def document_notices(
    session: AsyncSession,
    view: InvoiceView,
    delivery: DocumentDelivery,
    *,
    document: OutboundFile,
    skip: Sequence[ChatAddress] = (),
) -> list[Notice]:
    """The document with its delivery text for every chat of the tenant (but ``skip``, told
    otherwise) and its e-mail when e-mail goes out."""
    tenant = view.tenant
    t = delivery.issuer.translator(tenant.language)
    text = view.delivery_text(t, issuer_name(delivery.issuer))
    skipped = {(a.channel, a.chat_key, a.thread_key) for a in skip}
    recipients = [
        address
        for address in await tenant_chats(session, tenant.id)
        if (address.channel, address.chat_key, address.thread_key) not in skipped
    ]
    if delivery.email and tenant.email:
        recipients.append(ChatAddress(EMAIL_CHANNEL, tenant.email))
    return [Notice(address, text, (), (document,), tenant_id=tenant.id) for address in recipients]


async def deliver_document(
    ctx: EffectContext,
    document: Invoice,
    *,
    payer: dict[str, Any] | None = None,
    payer_text: str | None = None,
) -> None:
    """A webhook effect made ``document`` (a receipt or a credit note): the chat that paid
    (``payer``, a stored ``reply_to``) gets ``payer_text`` (the payment notice) with the PDF,
    every other recipient of the tenant's invoices the PDF with its delivery text, all written
    into the outbox with the effect (so once, however often the event comes). Without
    :attr:`EffectContext.documents` only ``payer_text`` is told, as text."""
    if ctx.documents is None:
        if payer_text is not None:
            ctx.tell(payer, payer_text, tenant_id=document.tenant_id)
        return
    [view] = await views(ctx.session, [document])
    pdf = await document_file(view, ctx.documents.issuer)
    told = address_of(payer) if payer_text is not None else None
    if payer_text is not None:
        ctx.tell(payer, payer_text, tenant_id=document.tenant_id, files=(pdf,))
    ctx.notices += await document_notices(
        ctx.session, view, ctx.documents, document=pdf, skip=[told] if told else []
    )
