"""Invoices: created with their number, lines added to drafts, sent (due date and pay link),
marked paid, cancelled, swept to overdue. Every change is audited in its own transaction."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.amounts import amount_str, minor_places, price_label
from billing.conversion import CostConversion
from billing.invoicing.arithmetic import (
    PPM,
    Totals,
    line_amount,
    round_to_minor,
    totals,
    vat_rate_ppm_for,
)
from billing.invoicing.loading import views
from billing.invoicing.pdf import pdf_file_name, render_invoice
from billing.invoicing.views import InvoiceView, Issuer
from billing.notices import Notice, enqueue
from billing.stripe.effects import becomes_customer
from core.clock import Clock
from core.envelope import ChatAddress, LinkButton, OutboundFile
from core.errors import PaymentUnavailable, SwitchboardError
from core.i18n import N_, Text, lazy
from core.money import MICROS_PER_UNIT, from_micros
from storage.db import Sessions
from storage.models import Invoice, InvoiceLine, Payment, Tenant
from storage.repositories.admins import AuditRepository
from storage.repositories.alerts import AlertRepository
from storage.repositories.invoices import InvoiceRepository
from storage.repositories.payments import PaymentRepository
from storage.repositories.tenants import TenantRepository
from storage.states import INVOICE_CLOSED, INVOICE_UNPAID, InvoiceStatus

if TYPE_CHECKING:
    from billing.invoicing.documents import DocumentDelivery
    from billing.stripe.checkout import CheckoutService

log = logging.getLogger(__name__)
#: An invoice's columns, to copy one without its session.
_COLUMNS = tuple(inspect(Invoice).column_attrs)


@dataclass(frozen=True, slots=True)
class InvoiceConfig:
    currency: str = "EUR"
    vat_rate: Decimal = Decimal("0.20")
    usd_to_billing_rate: Decimal = Decimal("1")
    due_days: int = 30
    issuer: Issuer = field(default_factory=Issuer)

    @property
    def conversion(self) -> CostConversion:
        return CostConversion(self.currency, self.usd_to_billing_rate)


#: The outbox cause of an invoice's delivery (its reference: ``NUMBER@queued-at``).
SEND_CAUSE = "invoice.send"
#: The outbox cause of a credit note made by a command (its reference: the note's number).
DOCUMENT_CAUSE = "invoice.document"


@dataclass(frozen=True, slots=True)
class QueuedSend:
    """An invoice written into the outbox for its recipients."""

    #: As the recipients see it (a draft shown sent, with its due date).
    view: InvoiceView
    document: OutboundFile
    outbox_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LineSpec:
    """A line to bill: ``quantity`` (``1``, ``1.5``) × ``unit_price_micros``."""

    description: str
    unit_price_micros: int
    quantity: Decimal = Decimal(1)


class InvoiceStateError(SwitchboardError):
    """The invoice is not in a status that allows the change (a line on a sent invoice)."""

    def __init__(self, message: str | Text) -> None:
        super().__init__(str(message), user_message=message)


#: An invoice's status inside a refusal, in the reader's language.
_STATUS = {
    "draft": N_("draft"),
    "sent": N_("sent"),
    "paid": N_("paid"),
    "overdue": N_("overdue"),
    "cancelled": N_("cancelled"),
}


def _status(invoice: Invoice) -> Text | str:
    return lazy(_STATUS[invoice.status]) if invoice.status in _STATUS else invoice.status


def check_sendable(invoice: Invoice) -> None:
    """Refuse to send an invoice that is closed or bills nothing."""
    if invoice.status in INVOICE_CLOSED:
        raise InvoiceStateError(
            lazy("{number} is {status}: nothing to send.", number=invoice.number,
                 status=_status(invoice))
        )  # fmt: skip
    if invoice.total_micros <= 0:
        raise InvoiceStateError(
            lazy("{number} totals nothing: add a line first.", number=invoice.number)
        )


def snapshot(invoice: Invoice) -> dict[str, Any]:
    """What the audit log keeps of an invoice before and after a change."""
    return {
        "status": invoice.status,
        "total": amount_str(invoice.total_micros, invoice.currency),
        "due_at": invoice.due_at.isoformat() if invoice.due_at else None,
        "paid_at": invoice.paid_at.isoformat() if invoice.paid_at else None,
        "notes": invoice.notes,
    }


def build_lines(specs: Sequence[LineSpec], currency: str) -> list[InvoiceLine]:
    return [
        InvoiceLine(
            description=spec.description,
            quantity=spec.quantity,
            unit_price_micros=spec.unit_price_micros,
            amount_micros=line_amount(spec.quantity, spec.unit_price_micros, currency),
        )
        for spec in specs
    ]


def apply_totals(invoice: Invoice, lines: Sequence[InvoiceLine]) -> None:
    found = totals((line.amount_micros for line in lines), invoice.vat_rate_ppm, invoice.currency)
    invoice.subtotal_micros = found.subtotal_micros
    invoice.vat_micros = found.vat_micros
    invoice.total_micros = found.total_micros


async def insert_invoice(
    session: AsyncSession,
    tenant: Tenant,
    specs: Sequence[LineSpec],
    *,
    now: datetime,
    actor: str,
    currency: str,
    period: str | None = None,
    notes: str = "",
    issuer_country: str = "",
) -> Invoice:
    """A draft with the year's next number, in ``session``'s transaction (audited there)."""
    [invoice] = await insert_invoices(
        session, [(tenant, specs)], now=now, actor=actor, period=period, notes=notes,
        currency=currency, issuer_country=issuer_country,
    )  # fmt: skip
    return invoice


async def insert_invoices(
    session: AsyncSession,
    items: Sequence[tuple[Tenant, Sequence[LineSpec]]],
    *,
    now: datetime,
    actor: str,
    currency: str | None = None,
    period: str | None = None,
    notes: str = "",
    issuer_country: str = "",
) -> list[Invoice]:
    """Drafts numbered in one block of the year's counter, in ``session``'s transaction (each
    audited there). ``currency`` None: each tenant's billing currency. VAT at the tenant's rate,
    or none under reverse charge from ``issuer_country`` (a draft's is settled again when it
    is sent: :func:`settle_draft`)."""
    invoices = InvoiceRepository(session)
    numbers = await invoices.next_numbers(now.year, len(items))
    made: list[tuple[Invoice, Sequence[InvoiceLine]]] = []
    audit = AuditRepository(session)
    for number, (tenant, specs) in zip(numbers, items, strict=True):
        billed_in = currency or tenant.billing_currency
        lines = build_lines(specs, billed_in)
        invoice = Invoice(
            number=number,
            tenant_id=tenant.id,
            status="draft",
            currency=billed_in,
            vat_rate_ppm=vat_rate_ppm_for(tenant.vat_rate_ppm, tenant.vat_id, issuer_country),
            period=period,
            notes=notes,
            issued_at=now,
            created_by=actor,
        )
        apply_totals(invoice, lines)
        made.append((invoice, lines))
        await audit.record(
            actor,
            "invoice.create",
            number,
            None,
            snapshot(invoice) | {"tenant": tenant.slug},
            tenant_id=tenant.id,
        )
    await invoices.add_many(made)
    return [invoice for invoice, _ in made]


class InvoiceService:
    def __init__(
        self,
        sessions: Sessions,
        config: InvoiceConfig,
        *,
        clock: Clock,
        checkout: CheckoutService | None = None,
    ) -> None:
        self._sessions = sessions
        self.config = config
        self._clock = clock
        self._checkout = checkout

    def attach_checkout(self, checkout: CheckoutService) -> None:
        """Pay links, once Stripe is configured (built after this service)."""
        self._checkout = checkout

    @property
    def can_take_payments(self) -> bool:
        return self._checkout is not None

    async def create(
        self, slug: str, specs: Sequence[LineSpec], *, actor: str, notes: str = ""
    ) -> InvoiceView:
        async with self._sessions.begin() as session:
            tenant = await TenantRepository(session).get(slug)
            invoice = await insert_invoice(
                session, tenant, specs, now=self._clock(), actor=actor,
                currency=tenant.billing_currency, notes=notes,
                issuer_country=self.config.issuer.country,
            )  # fmt: skip
            number = invoice.number
        return await self.view(number)

    async def add_line(self, number: str, spec: LineSpec, *, actor: str) -> InvoiceView:
        async with self._sessions.begin() as session:
            invoices = InvoiceRepository(session)
            invoice = await invoices.get(number, lock=True)
            if invoice.status != "draft":
                raise InvoiceStateError(
                    lazy(
                        "{number} is {status}: lines can only be added to a draft. "
                        "Cancel it and issue a new invoice instead.",
                        number=invoice.number,
                        status=_status(invoice),
                    )
                )
            before = snapshot(invoice)
            [line] = build_lines([spec], invoice.currency)
            await invoices.add_line(invoice, line)
            apply_totals(invoice, (await invoices.lines([invoice.id]))[invoice.id])
            await AuditRepository(session).record(
                actor, "invoice.line", invoice.number, before,
                snapshot(invoice) | {"line": spec.description}, tenant_id=invoice.tenant_id,
            )  # fmt: skip
        return await self.view(number)

    async def mark_paid(self, number: str, *, actor: str, note: str = "") -> InvoiceView:
        async with self._sessions.begin() as session:
            invoice = await InvoiceRepository(session).get(number, lock=True)
            if invoice.status in INVOICE_CLOSED:
                raise InvoiceStateError(
                    lazy("{number} is {status}: not payable.", number=invoice.number,
                         status=_status(invoice))
                )  # fmt: skip
            before = snapshot(invoice)
            now = self._clock()
            invoice.status, invoice.paid_at = "paid", now
            if note:
                invoice.notes = _append(invoice.notes, note)
            await AuditRepository(session).record(
                actor,
                "invoice.paid",
                invoice.number,
                before,
                snapshot(invoice),
                tenant_id=invoice.tenant_id,
            )
            tenant = await TenantRepository(session).by_id(invoice.tenant_id)
            await becomes_customer(
                session, tenant, now=now, actor=actor, what=f"invoice {invoice.number}"
            )
        await self._close_pay_links(invoice, "paid")
        return await self.view(number)

    async def cancel(
        self, number: str, *, actor: str, delivery: DocumentDelivery | None = None
    ) -> InvoiceView:
        """Cancel ``number``: see :meth:`cancel_delivering`."""
        view, _ = await self.cancel_delivering(number, actor=actor, delivery=delivery)
        return view

    async def cancel_delivering(
        self, number: str, *, actor: str, delivery: DocumentDelivery | None
    ) -> tuple[InvoiceView, tuple[int, ...]]:
        """Cancel ``number``; a sent one gets a credit note, delivered as its PDF to the
        tenant's chats and e-mail (``delivery``) through outbox rows written in the same
        transaction: the view and those rows' ids."""
        ids: list[int] = []
        async with self._sessions.begin() as session:
            invoice = await InvoiceRepository(session).get(number, lock=True)
            if invoice.status in INVOICE_CLOSED:
                raise InvoiceStateError(
                    lazy("{number} is {status} and cannot be cancelled.", number=invoice.number,
                         status=_status(invoice))
                )  # fmt: skip
            before = snapshot(invoice)
            now = self._clock()
            issued = invoice.status in INVOICE_UNPAID
            invoice.status, invoice.cancelled_at = "cancelled", now
            await AuditRepository(session).record(
                actor,
                "invoice.cancel",
                invoice.number,
                before,
                snapshot(invoice),
                tenant_id=invoice.tenant_id,
            )
            if issued:  # the customer has it: only a credit note takes it back (a draft: no)
                note = await issue_credit_note(
                    session, invoice, invoice.total_micros, now=now, actor=actor,
                    reason="invoice cancelled",
                )  # fmt: skip
                if delivery is not None:
                    ids = await self._enqueue_document(session, note, delivery, now=now)
        await self._close_pay_links(invoice, "cancelled")
        return await self.view(number), tuple(ids)

    async def _enqueue_document(
        self, session: AsyncSession, document: Invoice, delivery: DocumentDelivery, *,
        now: datetime,
    ) -> list[int]:  # fmt: skip
        """``document`` (a credit note) into the outbox for the tenant's recipients, in
        ``session``'s transaction: once per recipient (its number names the cause)."""
        from billing.invoicing.delivery import document_file, document_notices

        [view] = await views(session, [document])
        pdf = await document_file(view, delivery.issuer)
        notices = await document_notices(session, view, delivery, document=pdf)
        return await enqueue(
            session, notices, cause_kind=DOCUMENT_CAUSE, cause_ref=document.number, now=now,
            media_dir=delivery.media_dir,
        )  # fmt: skip

    async def _close_pay_links(self, invoice: Invoice, now_is: str) -> None:
        """The invoice left ``sent`` (cancelled, or paid by hand): expire its open Checkout
        Sessions so they can no longer be paid. Done after the change is committed, so that a
        payment racing it finds the invoice closed and raises ``invoice_paid_twice``. A
        session Stripe could not expire (Stripe down) is left to that alert, and one more alert
        says so now."""
        if self._checkout is None:
            return
        async with self._sessions() as session:
            open_rows = await PaymentRepository(session).list(
                tenant_id=invoice.tenant_id, status="pending", kind="invoice", item=invoice.number
            )
        left: list[str] = []
        for payment in open_rows:
            if payment.stripe_session_id is None:
                continue  # its session was never made: there is nothing to pay
            try:
                status = await self._checkout.expire(payment.stripe_session_id)
            except PaymentUnavailable as exc:
                log.warning("could not expire %s of %s: %s", payment.stripe_session_id,
                            invoice.number, exc.reason)  # fmt: skip
                left.append(payment.stripe_session_id)
                continue
            if status == "expired":
                await self._expired(payment)
        if left:
            async with self._sessions.begin() as session:
                await AlertRepository(session).add(
                    "pay_link_open",
                    f"{invoice.number} is {now_is} but Stripe could not expire its Checkout "
                    f"Session {', '.join(left)}: expire it in the Stripe dashboard, and refund "
                    "the payment if it is paid.",
                    now=self._clock(),
                    tenant_id=invoice.tenant_id,
                )

    async def _expired(self, payment: Payment) -> None:
        """Close the row at once (its ``checkout.session.expired`` event may come later): the
        invoice shows no pay link any more."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(Payment)
                .where(Payment.id == payment.id, Payment.status == "pending")
                .values(status="expired", closed_at=self._clock())
            )

    async def send(self, number: str, *, actor: str) -> InvoiceView:
        """Mark ``number`` sent at once (a draft becomes due in ``due_days``; a sent or overdue
        one is sent again as it is) and make sure it has a pay link. For an invoice delivered
        to its recipients, see :meth:`queue_send`: it becomes sent when a delivery succeeds."""
        async with self._sessions.begin() as session:
            invoice = await InvoiceRepository(session).get(number, lock=True)
            check_sendable(invoice)
            before = snapshot(invoice)
            now = self._clock()
            if invoice.status == "draft":
                await settle_draft(
                    session, invoice, now=now, issuer_country=self.config.issuer.country
                )
                invoice.status, invoice.due_at = "sent", now + timedelta(days=self.config.due_days)
            invoice.sent_at = now
            await AuditRepository(session).record(
                actor,
                "invoice.send",
                invoice.number,
                before,
                snapshot(invoice),
                tenant_id=invoice.tenant_id,
            )
        await self.ensure_pay_link(number, actor=actor)
        return await self.view(number)

    async def queue_send(
        self, number: str, recipients: Sequence[ChatAddress], *, actor: str, media_dir: Path
    ) -> QueuedSend:
        """Write invoice ``number`` (its PDF, a line of text and its pay button) into the outbox
        for each of ``recipients``; :meth:`delivered` makes it ``sent`` (due in ``due_days``)
        when the first of them got it, whichever process delivered it.

        A draft's issue date and VAT are settled first (the document shows the sending date)
        and a pay link is made; Stripe failing to make one does not stop the send: the PDF
        carries the bank details. The messages are written in the transaction that records
        the send (audited ``invoice.send``), so they go out once per recipient even if this
        process stops right after.
        """
        now = self._clock()
        async with self._sessions.begin() as session:
            invoice = await InvoiceRepository(session).get(number, lock=True)
            check_sendable(invoice)
            if invoice.status == "draft":
                await settle_draft(
                    session, invoice, now=now, issuer_country=self.config.issuer.country
                )
        try:
            await self.ensure_pay_link(number, actor=actor, sending=True)
        except PaymentUnavailable as exc:
            log.warning("no pay link for %s (%s): sent without one", number, exc.reason)
        view = self._as_sent(await self.view(number), now)
        issuer = self.config.issuer
        t = issuer.translator(view.tenant.language)
        document = OutboundFile(
            pdf_file_name(view),
            await asyncio.to_thread(render_invoice, view, issuer),
            "application/pdf",
            caption=view.caption(t),
        )
        total = t.money(from_micros(view.invoice.total_micros), view.invoice.currency)
        buttons = (LinkButton(t("Pay {total}", total=total), view.pay_url),) if view.pay_url else ()
        text = view.delivery_text(t, issuer.name or "us")
        notices = [
            Notice(address, text, buttons, (document,), tenant_id=view.tenant.id)
            for address in recipients
        ]
        async with self._sessions.begin() as session:
            invoice = await InvoiceRepository(session).get(number, lock=True)
            check_sendable(invoice)  # cancelled or paid meanwhile: nothing goes out
            ids = await enqueue(
                session, notices, cause_kind=SEND_CAUSE, cause_ref=f"{number}@{now.isoformat()}",
                now=now, media_dir=media_dir,
            )  # fmt: skip
            await AuditRepository(session).record(
                actor, "invoice.send", invoice.number, snapshot(invoice),
                snapshot(invoice) | {"recipients": len(ids)}, tenant_id=invoice.tenant_id,
            )  # fmt: skip
        return QueuedSend(view, document, tuple(ids))

    def _as_sent(self, view: InvoiceView, now: datetime) -> InvoiceView:
        """``view`` as the recipients will see it: a draft shown sent, due in ``due_days``
        (a copy: the invoice itself becomes sent only when a delivery succeeds)."""
        if view.invoice.status != "draft":
            return view
        copy = Invoice(**{a.key: getattr(view.invoice, a.key) for a in _COLUMNS})
        copy.status, copy.sent_at = "sent", now
        copy.due_at = now + timedelta(days=self.config.due_days)
        return replace(view, invoice=copy)

    async def delivered(self, session: AsyncSession, cause_ref: str, now: datetime) -> None:
        """An outbox message of :meth:`queue_send` reached its recipient (called in the
        transaction that records it): the invoice is sent from the time it was queued, if it
        is still a draft. Later deliveries of the same send find it sent and change nothing."""
        number, _, stamp = cause_ref.partition("@")
        invoice = await InvoiceRepository(session).find(number, lock=True)
        if invoice is None or invoice.status != "draft":
            return
        queued_at = datetime.fromisoformat(stamp) if stamp else now
        before = snapshot(invoice)
        invoice.status, invoice.sent_at = "sent", queued_at
        invoice.due_at = queued_at + timedelta(days=self.config.due_days)
        await AuditRepository(session).record(
            "outbox", "invoice.delivered", invoice.number, before, snapshot(invoice),
            tenant_id=invoice.tenant_id,
        )  # fmt: skip

    async def ensure_pay_link(
        self, number: str, *, actor: str, sending: bool = False
    ) -> str | None:
        """The invoice's Checkout Session URL: created once for its total, then reused.
        ``sending``: a draft being sent gets one too (it is payable once delivered)."""
        if self._checkout is None:
            return None
        view = await self.view(number)
        being_sent = sending and view.invoice.status == "draft"
        if view.pay_url is not None or not (view.payable or being_sent):
            return view.pay_url
        invoice = view.invoice
        old = invoice.payment_id
        link = await self._checkout.invoice_link(
            view.tenant, invoice.number, invoice.total_micros, invoice.currency, actor=actor
        )
        async with self._sessions.begin() as session:
            # Only the first link is kept if two sends raced: both then show the same one.
            unchanged = Invoice.payment_id.is_(None) if old is None else Invoice.payment_id == old
            await session.execute(
                update(Invoice)
                .where(Invoice.id == invoice.id, unchanged)
                .values(payment_id=link.payment_id)
            )
        return (await self.view(number)).pay_url

    async def sweep_overdue(self) -> list[str]:
        """Sent invoices past their due date become ``overdue``."""
        now = self._clock()
        async with self._sessions.begin() as session:
            due = await InvoiceRepository(session).past_due(now)
            audit = AuditRepository(session)
            for invoice in due:
                before = snapshot(invoice)
                invoice.status = "overdue"
                await audit.record("scheduler", "invoice.overdue", invoice.number, before,
                                   snapshot(invoice), tenant_id=invoice.tenant_id)  # fmt: skip
        return [invoice.number for invoice in due]

    async def paid_between(self, since: datetime, until: datetime) -> list[InvoiceView]:
        async with self._sessions() as session:
            found = await InvoiceRepository(session).paid_between(since, until)
            return await views(session, found)

    async def views_of(self, numbers: Sequence[str]) -> list[InvoiceView]:
        async with self._sessions() as session:
            found = await InvoiceRepository(session).by_numbers(numbers)
            return await views(session, found)

    async def credit_notes_of(self, number: str) -> list[InvoiceView]:
        """The credit notes that credit invoice ``number``, oldest first."""
        async with self._sessions() as session:
            invoice = await InvoiceRepository(session).get(number)
            found = await InvoiceRepository(session).credit_notes_of(invoice.id)
            return await views(session, found)

    async def view(self, number: str) -> InvoiceView:
        async with self._sessions() as session:
            invoice = await InvoiceRepository(session).get(number)
            return (await views(session, [invoice]))[0]

    async def search(
        self,
        *,
        slug: str | None = None,
        status: InvoiceStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[InvoiceView]:
        async with self._sessions() as session:
            tenant_id = (await TenantRepository(session).get(slug)).id if slug else None
            found = await InvoiceRepository(session).search(
                tenant_id=tenant_id, status=status, issued_since=since, issued_until=until,
                limit=limit,
            )  # fmt: skip
            return await views(session, found)


async def settle_draft(
    session: AsyncSession, invoice: Invoice, *, now: datetime, issuer_country: str
) -> None:
    """What a draft becomes as it is issued (DESIGN §8): its issue date is the day it is sent,
    and its VAT follows the tenant's billing details as they are then (its rate, or none under
    reverse charge), the totals recomputed from the lines (VAT once on the subtotal)."""
    invoice.issued_at = now
    tenant = await TenantRepository(session).by_id(invoice.tenant_id)
    rate = vat_rate_ppm_for(tenant.vat_rate_ppm, tenant.vat_id, issuer_country)
    if rate != invoice.vat_rate_ppm:
        invoice.vat_rate_ppm = rate
        apply_totals(invoice, (await InvoiceRepository(session).lines([invoice.id]))[invoice.id])


def _append(notes: str, note: str) -> str:
    return f"{notes}\n{note}" if notes else note


# -- receipts and credit notes (DESIGN §8 "Every sale has exactly one invoice", "Credit notes") --


def split_gross(gross_micros: int, vat_rate_ppm: int, currency: str) -> Totals:
    """A VAT-inclusive amount (a pack's or plan's price) as net + VAT = ``gross_micros`` exactly.

    The net is gross / (1 + rate) rounded half-up to the minor unit and the VAT is what is
    left, so the total is always what was charged, to the cent. Of the net amounts next to
    that one, the first whose VAT computed the invoices' way (once on the net, rounded) is
    exactly what is left is taken, so the receipt obeys the same rule as every invoice
    whenever some net can; when none can, the VAT is still within one minor unit of
    net × rate. A negative amount (a credit note) splits as the mirror of the positive one.
    """
    if gross_micros < 0:
        mirror = split_gross(-gross_micros, vat_rate_ppm, currency)
        return Totals(-mirror.subtotal_micros, -mirror.vat_micros, -mirror.total_micros)
    exact = from_micros(gross_micros) * PPM / (PPM + vat_rate_ppm)
    nearest = round_to_minor(exact, currency)
    step = MICROS_PER_UNIT // 10 ** minor_places(currency)
    for net in (nearest, nearest - step, nearest + step):
        if 0 <= net <= gross_micros and totals([net], vat_rate_ppm, currency).total_micros == (
            gross_micros
        ):
            return Totals(net, gross_micros - net, gross_micros)
    return Totals(nearest, gross_micros - nearest, gross_micros)


def receipt_description(payment: Payment, plan_name: str | None = None) -> str:
    """The receipt's one line: what the payment bought."""
    if payment.kind == "pack":
        return f"Token pack {payment.item}: {payment.tokens:,} tokens"
    name = plan_name or payment.item
    return f"{name} plan: one month's subscription, {payment.tokens:,} tokens included"


async def issue_receipt(
    session: AsyncSession,
    tenant: Tenant,
    payment: Payment,
    description: str,
    *,
    now: datetime,
    actor: str = "stripe",
    issuer_country: str = "",
) -> Invoice:
    """The ``paid`` invoice of a sale Stripe collected (a pack, a subscription period), in the
    INV sequence, issued and paid at ``now``, its total what ``payment`` charged with the VAT
    split out at the tenant's rate (:func:`split_gross`; none under reverse charge from
    ``issuer_country``, as for every invoice), in ``session``'s transaction (the one that
    credits the payment). A payment already receipted keeps its one receipt."""
    invoices = InvoiceRepository(session)
    existing = await invoices.receipt_of(payment.id)
    if existing is not None:
        return existing
    [number] = await invoices.next_numbers(now.year, 1)
    rate = vat_rate_ppm_for(tenant.vat_rate_ppm, tenant.vat_id, issuer_country)
    found = split_gross(payment.amount_micros, rate, payment.currency)
    invoice = Invoice(
        number=number, tenant_id=tenant.id, kind="invoice", status="paid",
        currency=payment.currency, vat_rate_ppm=rate,
        subtotal_micros=found.subtotal_micros, vat_micros=found.vat_micros,
        total_micros=found.total_micros, notes="", issued_at=now, paid_at=now,
        payment_id=payment.id, created_by=actor,
    )  # fmt: skip
    line = InvoiceLine(
        description=description, quantity=Decimal(1),
        unit_price_micros=found.subtotal_micros, amount_micros=found.subtotal_micros,
    )  # fmt: skip
    await invoices.add(invoice, [line])
    await AuditRepository(session).record(
        actor, "invoice.receipt", number, None,
        snapshot(invoice) | {"tenant": tenant.slug, "payment": payment.id},
        tenant_id=tenant.id,
    )  # fmt: skip
    return invoice


async def issue_credit_note(
    session: AsyncSession,
    invoice: Invoice,
    amount_micros: int,
    *,
    now: datetime,
    actor: str,
    reason: str,
    payment_id: int | None = None,
) -> Invoice:
    """A credit note ``CN-YYYY-NNNN`` (its own sequence) crediting ``amount_micros`` (gross,
    positive) of ``invoice``: its total is −``amount_micros`` exactly. Crediting all of an
    invoice not credited before mirrors its lines and totals; a part (a partial refund) is one
    line with the VAT split out at the invoice's rate. ``paid`` (settled) when issued."""
    invoices = InvoiceRepository(session)
    whole = amount_micros == invoice.total_micros and await invoices.credited(invoice.id) == 0
    [number] = await invoices.next_numbers(now.year, 1, "credit_note")
    if whole:
        found = Totals(-invoice.subtotal_micros, -invoice.vat_micros, -invoice.total_micros)
        lines = [
            InvoiceLine(
                description=line.description,
                quantity=line.quantity,
                unit_price_micros=-line.unit_price_micros,
                amount_micros=-line.amount_micros,
            )
            for line in (await invoices.lines([invoice.id]))[invoice.id]
        ]
    else:
        found = split_gross(-amount_micros, invoice.vat_rate_ppm, invoice.currency)
        lines = [
            InvoiceLine(
                description=f"{reason} (part of invoice {invoice.number})",
                quantity=Decimal(1),
                unit_price_micros=found.subtotal_micros,
                amount_micros=found.subtotal_micros,
            )
        ]
    note = Invoice(
        number=number, tenant_id=invoice.tenant_id, kind="credit_note", status="paid",
        currency=invoice.currency, vat_rate_ppm=invoice.vat_rate_ppm,
        subtotal_micros=found.subtotal_micros, vat_micros=found.vat_micros,
        total_micros=found.total_micros, notes=f"Credits invoice {invoice.number}: {reason}.",
        issued_at=now, paid_at=now, payment_id=payment_id, credits_invoice_id=invoice.id,
        created_by=actor,
    )  # fmt: skip
    await invoices.add(note, lines)
    await AuditRepository(session).record(
        actor, "invoice.credit_note", number, None,
        snapshot(note) | {"credits": invoice.number, "reason": reason},
        tenant_id=invoice.tenant_id,
    )  # fmt: skip
    return note


async def credit_refund(
    session: AsyncSession, payment: Payment, *, now: datetime
) -> Invoice | None:
    """The credit note for what ``payment.refunded_micros`` refunds of the payment's receipt
    beyond what earlier credit notes credited (a partial refund: its increment), or None when
    there is nothing new to credit or no receipt. Called with the payment row locked, in the
    transaction of the refund's effect, so each increment is credited once."""
    invoices = InvoiceRepository(session)
    receipt = await invoices.receipt_of(payment.id)
    if receipt is None:
        return None
    receipt = await invoices.by_id(receipt.id, lock=True) or receipt
    refunded = min(payment.refunded_micros, receipt.total_micros)
    increment = refunded - await invoices.credited(receipt.id)
    if increment <= 0:
        return None
    return await issue_credit_note(
        session, receipt, increment, now=now, actor="stripe",
        reason=f"refund through Stripe of {price_label(increment, receipt.currency)}",
        payment_id=payment.id,
    )  # fmt: skip
