"""Invoices as :class:`InvoiceView`: each with its lines, tenant, pay link and the invoice it
credits, loaded for many in a few queries (shared by the invoice service and document delivery)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from billing.invoicing.views import InvoiceView
from storage.models import Invoice
from storage.repositories.invoices import InvoiceRepository
from storage.repositories.payments import PaymentRepository
from storage.repositories.tenants import TenantRepository


async def views(session: AsyncSession, invoices: Sequence[Invoice]) -> list[InvoiceView]:
    """Invoices with their lines, tenants and pay links, in a few queries however many."""
    lines = await InvoiceRepository(session).lines([i.id for i in invoices])
    tenants = await TenantRepository(session).by_ids({i.tenant_id for i in invoices})
    payment_ids = {i.payment_id for i in invoices if i.payment_id is not None}
    urls = await PaymentRepository(session).pending_urls(payment_ids)
    credited = await InvoiceRepository(session).numbers_of(
        [i.credits_invoice_id for i in invoices if i.credits_invoice_id is not None]
    )
    return [
        InvoiceView(
            invoice,
            tuple(lines[invoice.id]),
            tenants[invoice.tenant_id],
            urls.get(invoice.payment_id) if invoice.payment_id is not None else None,
            credited.get(invoice.credits_invoice_id) if invoice.credits_invoice_id else None,
        )
        for invoice in invoices
    ]
