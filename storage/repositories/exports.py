"""Rows for CSV exports, streamed from the database in batches.

Each export is one query read through ``AsyncSession.stream`` with ``yield_per``: PostgreSQL
(asyncpg) reads it through a server-side cursor and SQLite fetches it chunk by chunk, so however
many rows match, only one batch is in memory at a time. Rows are plain tuples of columns (no ORM
objects); the command that writes each export names its columns
(``admin_commands/exports.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Assistant,
    ContentItem,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    Tenant,
    UsageEvent,
)
from storage.repositories.usage import CALLED

BATCH_ROWS = 1_000


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """Which rows: one tenant or all, and a time window ``[since, until)`` or all time."""

    tenant_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


class ExportRepository:
    def __init__(self, session: AsyncSession, batch_rows: int = BATCH_ROWS) -> None:
        self.session = session
        self.batch_rows = batch_rows

    def usage(self, where: ExportFilter) -> AsyncIterator[Sequence[tuple[Any, ...]]]:
        """Finished calls (settled or failed), as ``/stats`` counts them."""
        query = (
            select(
                UsageEvent.created_at,
                Tenant.slug,
                Assistant.slug,
                UsageEvent.provider,
                UsageEvent.model,
                UsageEvent.kind,
                UsageEvent.status,
                UsageEvent.input_tokens,
                UsageEvent.cached_input_tokens,
                UsageEvent.output_tokens,
                UsageEvent.reasoning_tokens,
                UsageEvent.charged_tokens,
                UsageEvent.overdraft_tokens,
                UsageEvent.cost_micros,
                UsageEvent.cost_currency,
                UsageEvent.priced,
                UsageEvent.latency_ms,
                UsageEvent.idempotency_key,
                UsageEvent.cache_write_tokens,
                UsageEvent.estimated,
                UsageEvent.usage_report,
            )
            .join(Tenant, Tenant.id == UsageEvent.tenant_id)
            .outerjoin(Assistant, Assistant.id == UsageEvent.assistant_id)
            .where(UsageEvent.status.in_(CALLED))
        )
        return self._stream(
            query, UsageEvent.tenant_id, UsageEvent.created_at, UsageEvent.id, where
        )

    def library(self, where: ExportFilter) -> AsyncIterator[Sequence[tuple[Any, ...]]]:
        query = (
            select(
                ContentItem.number,
                Tenant.slug,
                ContentItem.created_at,
                ContentItem.kind,
                ContentItem.title,
                Assistant.slug,
                ContentItem.archived,
                ContentItem.mime_type,
                ContentItem.media_path,
                ContentItem.text,
            )
            .join(Tenant, Tenant.id == ContentItem.tenant_id)
            .outerjoin(Assistant, Assistant.id == ContentItem.assistant_id)
        )
        return self._stream(
            query, ContentItem.tenant_id, ContentItem.created_at, ContentItem.id, where
        )

    def invoice_lines(self, where: ExportFilter) -> AsyncIterator[Sequence[tuple[Any, ...]]]:
        """Every line of every invoice issued in the window (a row per line), oldest first."""
        query = (
            select(
                Invoice.number,
                Tenant.slug,
                Invoice.status,
                Invoice.issued_at,
                Invoice.due_at,
                Invoice.paid_at,
                Invoice.currency,
                InvoiceLine.position,
                InvoiceLine.description,
                InvoiceLine.quantity,
                InvoiceLine.unit_price_micros,
                InvoiceLine.amount_micros,
                Invoice.subtotal_micros,
                Invoice.vat_rate_ppm,
                Invoice.vat_micros,
                Invoice.total_micros,
            )
            .join(Tenant, Tenant.id == Invoice.tenant_id)
            .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)
        )
        # Ordered by (issued_at, invoice id) and then, as the last key, the line's id.
        return self._stream(query, Invoice.tenant_id, Invoice.issued_at, InvoiceLine.id, where)

    def ledger(self, where: ExportFilter) -> AsyncIterator[Sequence[tuple[Any, ...]]]:
        query = select(
            LedgerEntry.created_at,
            Tenant.slug,
            LedgerEntry.kind,
            LedgerEntry.tokens,
            LedgerEntry.balance_after,
            LedgerEntry.reference,
            LedgerEntry.note,
            LedgerEntry.actor,
        ).join(Tenant, Tenant.id == LedgerEntry.tenant_id)
        return self._stream(
            query, LedgerEntry.tenant_id, LedgerEntry.created_at, LedgerEntry.id, where
        )

    async def _stream(
        self,
        query: Select[*tuple[Any, ...]],
        tenant: Any,
        created: Any,
        key: Any,
        where: ExportFilter,
    ) -> AsyncIterator[Sequence[tuple[Any, ...]]]:
        if where.tenant_id is not None:
            query = query.where(tenant == where.tenant_id)
        if where.since is not None:
            query = query.where(created >= where.since)
        if where.until is not None:
            query = query.where(created < where.until)
        query = query.order_by(created, key).execution_options(yield_per=self.batch_rows)
        result = await self.session.stream(query)
        try:
            async for batch in result.partitions(self.batch_rows):
                yield [tuple(row) for row in batch]
        finally:
            await result.close()
