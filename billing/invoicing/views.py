"""An invoice with what showing it needs (lines, tenant, pay link), and its ``--json`` document
(DESIGN §8: amounts as decimal strings with the currency's places)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.amounts import amount_str, price_label
from billing.invoicing.arithmetic import rate_of
from core.i18n import Translator, Translators
from core.money import from_micros
from storage.models import Invoice, InvoiceLine, Tenant
from storage.states import INVOICE_UNPAID


@dataclass(frozen=True, slots=True)
class Issuer:
    """Who issues the invoices and on what terms (``COMPANY_NAME``, ``COMPANY_ADDRESS``,
    ``COMPANY_VAT_ID``, ``COMPANY_COUNTRY``, ``COMPANY_LEGAL_ID``, ``COMPANY_BANK``,
    ``INVOICE_PAYMENT_TERMS``), and the language of its documents for a tenant that chose none
    (``DEFAULT_LANGUAGE``)."""

    name: str = ""
    address: str = ""
    vat_id: str = ""
    country: str = ""
    legal_id: str = ""
    bank: str = ""
    payment_terms: str = ""
    language: str = "en"
    #: The message catalogs documents are written with (built once by the composition root).
    translators: Translators | None = field(default=None, compare=False, repr=False)

    def translator(self, language: str | None) -> Translator:
        """The translator of a tenant's documents: its language, else the issuer's."""
        if self.translators is None:
            raise RuntimeError("Issuer built without translators (see bot.app)")
        return self.translators.get(language or self.language)


@dataclass(frozen=True, slots=True)
class InvoiceView:
    invoice: Invoice
    lines: tuple[InvoiceLine, ...]
    tenant: Tenant
    pay_url: str | None = None
    #: The number of the invoice a credit note credits.
    credits: str | None = None

    @property
    def number(self) -> str:
        return self.invoice.number

    @property
    def title(self) -> str:
        """``Invoice INV-2026-0001``, or ``Credit note CN-2026-0001 for INV-2026-0001``."""
        if self.invoice.kind == "credit_note":
            return f"Credit note {self.invoice.number} for {self.credits or '?'}"
        return f"Invoice {self.invoice.number}"

    def document_title(self, t: Translator) -> str:
        """The title the PDF has, in its language: ``Facture INV-…``, ``Avoir CN-…``."""
        if self.invoice.kind == "credit_note":
            return f"{t.pgettext('invoice', 'Credit note')} {self.invoice.number}"
        return f"{t.pgettext('invoice', 'Invoice')} {self.invoice.number}"

    def caption(self, t: Translator) -> str:
        """The PDF's caption in a chat: ``Facture INV-2026-0001 : 120,00 EUR``."""
        total = t.money(from_micros(self.invoice.total_micros), self.invoice.currency)
        return t("{document}: {total}", document=self.document_title(t), total=total)

    def delivery_text(self, t: Translator, issuer: str) -> str:
        """The message a tenant's chats and e-mail get with the PDF, in its language."""
        inv = self.invoice
        total = t.money(from_micros(inv.total_micros), inv.currency)
        if inv.kind == "credit_note":
            return t(
                "Credit note {number} from {issuer} for invoice {credits}: {total}.",
                number=inv.number, issuer=issuer, credits=self.credits or "?", total=total,
            )  # fmt: skip
        if inv.status == "paid":
            return t(
                "Receipt: invoice {number} from {issuer}, {total}, paid. Thank you.",
                number=inv.number, issuer=issuer, total=total,
            )  # fmt: skip
        if inv.due_at:
            return t(
                "Invoice {number} from {issuer}: {total}, due {date}.",
                number=inv.number, issuer=issuer, total=total, date=t.date(inv.due_at),
            )  # fmt: skip
        return t(
            "Invoice {number} from {issuer}: {total}.", number=inv.number, issuer=issuer,
            total=total,
        )  # fmt: skip

    @property
    def payable(self) -> bool:
        return self.invoice.status in INVOICE_UNPAID

    def money(self, micros: int) -> str:
        return price_label(micros, self.invoice.currency)

    def unit_price(self, micros: int) -> str:
        """A unit price as given (``0.333 EUR``), never shown rounded: only amounts are."""
        exact = from_micros(micros)
        if exact == exact.quantize(Decimal("0.01")):
            return self.money(micros)
        return f"{exact.normalize():f} {self.invoice.currency}"

    @property
    def vat_label(self) -> str:
        return f"VAT {(rate_of(self.invoice.vat_rate_ppm) * 100).normalize():f} %"

    def to_json(self) -> dict[str, Any]:
        inv = self.invoice

        def amount(micros: int) -> str:
            return amount_str(micros, inv.currency)

        return {
            "number": inv.number,
            "kind": inv.kind,
            "credits": self.credits,
            "tenant": self.tenant.slug,
            "status": inv.status,
            "currency": inv.currency,
            "subtotal": amount(inv.subtotal_micros),
            "vat_rate": str(rate_of(inv.vat_rate_ppm)),
            "vat": amount(inv.vat_micros),
            "total": amount(inv.total_micros),
            "issued_at": _iso(inv.issued_at),
            "due_at": _iso(inv.due_at),
            "paid_at": _iso(inv.paid_at),
            "period": inv.period,
            "notes": inv.notes,
            "lines": [
                {
                    "description": line.description,
                    # A whole number as always; a fractional one as a decimal string, like
                    # the amounts ("1.5").
                    "quantity": quantity_json(line.quantity),
                    "unit_price": amount(line.unit_price_micros),
                    "amount": amount(line.amount_micros),
                }
                for line in self.lines
            ],
            "pay_url": self.pay_url,
        }

    def summary(self) -> str:
        """``INV-2026-0001 acme sent 120.00 EUR due 2026-12-01``."""
        inv = self.invoice
        due = f" due {inv.due_at:%Y-%m-%d}" if inv.due_at and self.payable else ""
        paid = f" paid {inv.paid_at:%Y-%m-%d}" if inv.paid_at else ""
        return (
            f"{inv.number} {self.tenant.slug} {inv.status} {self.money(inv.total_micros)}"
            f"{due}{paid}"
        )

    def text(self) -> str:
        inv = self.invoice
        rows = [
            f"{self.title} to {self.tenant.name} ({self.tenant.slug}): {inv.status}",
            f"Issued {inv.issued_at:%Y-%m-%d}"
            + (f", due {inv.due_at:%Y-%m-%d}" if inv.due_at else "")
            + (f", paid {inv.paid_at:%Y-%m-%d}" if inv.paid_at else ""),
        ]
        rows += [
            f"• {line.description}: {line.quantity} × {self.unit_price(line.unit_price_micros)}"
            f" = {self.money(line.amount_micros)}"
            for line in self.lines
        ]
        rows += [
            f"Subtotal {self.money(inv.subtotal_micros)}",
            f"{self.vat_label} {self.money(inv.vat_micros)}",
            f"Total {self.money(inv.total_micros)}",
        ]
        if inv.notes:
            rows.append(f"Notes: {inv.notes}")
        if self.pay_url and self.payable:
            rows.append(f"Pay: {self.pay_url}")
        return "\n".join(rows)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def quantity_json(quantity: Decimal) -> int | str:
    whole = quantity.to_integral_value()
    return int(whole) if quantity == whole else str(quantity)
