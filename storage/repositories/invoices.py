"""Invoices, their lines, and the per-year counter their numbers come from."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFoundError
from storage.models import CreditNoteCounter, Invoice, InvoiceCounter, InvoiceLine
from storage.states import InvoiceKind, InvoiceStatus

#: Each kind's number prefix and the per-year counter its numbers come from.
_SEQUENCES: dict[InvoiceKind, tuple[str, type[InvoiceCounter] | type[CreditNoteCounter]]] = {
    "invoice": ("INV", InvoiceCounter),
    "credit_note": ("CN", CreditNoteCounter),
}


def invoice_number(year: int, seq: int, kind: InvoiceKind = "invoice") -> str:
    return f"{_SEQUENCES[kind][0]}-{year}-{seq:04d}"


class InvoiceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def next_number(self, year: int) -> str:
        [number] = await self.next_numbers(year, 1)
        return number

    async def next_numbers(self, year: int, count: int, kind: InvoiceKind = "invoice") -> list[str]:
        """The year's next numbers of ``kind`` (invoices and credit notes each have their own
        sequence), taken in the caller's transaction.

        The counter row is created if missing (``ON CONFLICT DO NOTHING``, so two processes
        creating the year's first invoice both succeed) and bumped with ``UPDATE ... RETURNING``:
        the row lock orders concurrent creators, and a rolled-back creation rolls its number back
        with it, so numbers have no gap and are never given twice.
        """
        insert = (
            pg_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        )
        counter = _SEQUENCES[kind][1]
        await self.session.execute(
            insert(counter).values(year=year, last=0).on_conflict_do_nothing()
        )
        seq = (
            await self.session.execute(
                update(counter)
                .where(counter.year == year)
                .values(last=counter.last + count)
                .returning(counter.last)
            )
        ).scalar_one()
        return [invoice_number(year, n, kind) for n in range(int(seq) - count + 1, int(seq) + 1)]

    async def add(self, invoice: Invoice, lines: Sequence[InvoiceLine]) -> Invoice:
        await self.add_many([(invoice, lines)])
        return invoice

    async def add_many(self, items: Sequence[tuple[Invoice, Sequence[InvoiceLine]]]) -> None:
        """Invoices with their lines, in two flushes however many there are."""
        self.session.add_all([invoice for invoice, _ in items])
        await self.session.flush()
        for invoice, lines in items:
            for position, line in enumerate(lines, start=1):
                line.invoice_id, line.position = invoice.id, position
                self.session.add(line)
        await self.session.flush()

    async def add_line(self, invoice: Invoice, line: InvoiceLine) -> None:
        last = await self.session.scalar(
            select(func.max(InvoiceLine.position)).where(InvoiceLine.invoice_id == invoice.id)
        )
        line.invoice_id, line.position = invoice.id, int(last or 0) + 1
        self.session.add(line)
        await self.session.flush()

    async def get(self, number: str, *, lock: bool = False) -> Invoice:
        invoice = await self.find(number, lock=lock)
        if invoice is None:
            raise NotFoundError("invoice", number)
        return invoice

    async def find(self, number: str, *, lock: bool = False) -> Invoice | None:
        query = select(Invoice).where(Invoice.number == number.upper())
        return await self._one(query.with_for_update() if lock else query)

    async def by_numbers(self, numbers: Sequence[str]) -> list[Invoice]:
        """In the order given."""
        found: dict[str, Invoice] = {}
        for start in range(0, len(numbers), 500):
            query = select(Invoice).where(Invoice.number.in_(numbers[start : start + 500]))
            found.update({i.number: i for i in (await self.session.execute(query)).scalars()})
        return [found[n] for n in numbers if n in found]

    async def by_id(self, invoice_id: int, *, lock: bool = False) -> Invoice | None:
        query = select(Invoice).where(Invoice.id == invoice_id)
        return await self._one(query.with_for_update() if lock else query)

    async def receipt_of(self, payment_id: int) -> Invoice | None:
        """The invoice that records ``payment_id`` as paid (a receipt), if it has one."""
        return await self._one(
            select(Invoice).where(Invoice.payment_id == payment_id, Invoice.kind == "invoice")
        )

    async def credited(self, invoice_id: int) -> int:
        """How much the credit notes of ``invoice_id`` credit in all (a positive amount)."""
        query = select(func.coalesce(func.sum(Invoice.total_micros), 0)).where(
            Invoice.credits_invoice_id == invoice_id, Invoice.kind == "credit_note"
        )
        return -int((await self.session.execute(query)).scalar_one())

    async def credit_notes_of(self, invoice_id: int) -> list[Invoice]:
        query = (
            select(Invoice)
            .where(Invoice.credits_invoice_id == invoice_id, Invoice.kind == "credit_note")
            .order_by(Invoice.id)
        )
        return list((await self.session.execute(query)).scalars())

    async def numbers_of(self, invoice_ids: Sequence[int]) -> dict[int, str]:
        """Invoice id → number (the invoices credit notes credit)."""
        if not invoice_ids:
            return {}
        query = select(Invoice.id, Invoice.number).where(Invoice.id.in_(invoice_ids))
        return {int(i): str(n) for i, n in (await self.session.execute(query)).all()}

    async def numbers_for_period(self, period: str) -> dict[int, str]:
        """Tenant id → number of the invoices already made for ``period``."""
        query = select(Invoice.tenant_id, Invoice.number).where(Invoice.period == period)
        return {int(t): str(n) for t, n in (await self.session.execute(query)).all()}

    async def for_period(self, tenant_id: int, period: str) -> Invoice | None:
        return await self._one(
            select(Invoice).where(Invoice.tenant_id == tenant_id, Invoice.period == period)
        )

    async def _one(self, query: Select[Invoice]) -> Invoice | None:
        return (await self.session.execute(query)).scalars().first()

    async def lines(self, invoice_ids: Sequence[int]) -> dict[int, list[InvoiceLine]]:
        found: dict[int, list[InvoiceLine]] = {i: [] for i in invoice_ids}
        for start in range(0, len(invoice_ids), 500):
            query = (
                select(InvoiceLine)
                .where(InvoiceLine.invoice_id.in_(invoice_ids[start : start + 500]))
                .order_by(InvoiceLine.invoice_id, InvoiceLine.position)
            )
            for line in (await self.session.execute(query)).scalars():
                found[line.invoice_id].append(line)
        return found

    async def search(
        self,
        *,
        tenant_id: int | None = None,
        status: InvoiceStatus | None = None,
        issued_since: datetime | None = None,
        issued_until: datetime | None = None,
        limit: int | None = None,
    ) -> list[Invoice]:
        query = select(Invoice).order_by(Invoice.issued_at.desc(), Invoice.id.desc())
        if tenant_id is not None:
            query = query.where(Invoice.tenant_id == tenant_id)
        if status is not None:
            query = query.where(Invoice.status == status)
        if issued_since is not None:
            query = query.where(Invoice.issued_at >= issued_since)
        if issued_until is not None:
            query = query.where(Invoice.issued_at < issued_until)
        if limit is not None:
            query = query.limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def past_due(self, now: datetime) -> list[Invoice]:
        """Sent invoices whose due date has passed, locked for the sweep that marks them."""
        query = (
            select(Invoice)
            .where(Invoice.status == "sent", Invoice.due_at < now)
            .order_by(Invoice.id)
            .with_for_update()
        )
        return list((await self.session.execute(query)).scalars())

    async def issued_by_status(
        self, since: datetime, until: datetime
    ) -> dict[InvoiceStatus, tuple[int, int]]:
        """``{status: (invoices, total_micros)}`` of the invoices issued in ``[since, until)``,
        summed by the database."""
        query = (
            select(Invoice.status, func.count(), func.coalesce(func.sum(Invoice.total_micros), 0))
            .where(Invoice.issued_at >= since, Invoice.issued_at < until, Invoice.kind == "invoice")
            .group_by(Invoice.status)
        )
        return {
            status: (int(count), int(total))
            for status, count, total in (await self.session.execute(query)).all()
        }

    async def paid_total(self, since: datetime, until: datetime) -> int:
        """The total of the invoices paid in ``[since, until)``, less the refunds made in it
        (credit notes that carry the refunded payment; one for a cancelled unpaid invoice takes
        back nothing that was counted), in micro-units."""
        query = select(func.coalesce(func.sum(Invoice.total_micros), 0)).where(
            Invoice.status == "paid",
            Invoice.paid_at >= since,
            Invoice.paid_at < until,
            (Invoice.kind == "invoice") | Invoice.payment_id.is_not(None),
        )
        return int((await self.session.execute(query)).scalar_one())

    async def paid_between(self, since: datetime, until: datetime) -> list[Invoice]:
        query = select(Invoice).where(
            Invoice.status == "paid", Invoice.paid_at >= since, Invoice.paid_at < until
        )
        return list((await self.session.execute(query)).scalars())
