"""What an invoice document says, in the language it is written in, from the message catalog
(``locale/``, context ``invoice``: a document's labels are translated apart from chat replies,
as "Total" reads "Total TTC" on a French invoice).

The reverse-charge mentions are the ones each country's tax administration expects:
"Reverse charge", "Autoliquidation" (CGI art. 283-2), "Steuerschuldnerschaft des
Leistungsempfängers" (UStG §14a).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.i18n import Translator

#: The gettext context of a document's labels.
CONTEXT = "invoice"


@dataclass(frozen=True, slots=True)
class Labels:
    invoice: str
    draft: str
    seller: str
    buyer: str
    vat_id: str
    issue_date: str
    supply_period: str
    due_date: str
    paid_on: str
    description: str
    quantity: str
    unit_price: str
    amount: str
    subtotal: str
    vat: str
    total: str
    reverse_charge: str
    notes: str
    payment_terms: str
    bank: str
    pay_online: str
    #: A closed invoice's status, printed above its parties (``paid``, ``cancelled``).
    statuses: dict[str, str]
    credit_note: str
    #: Followed by the number of the invoice a credit note credits.
    credits: str


def labels_for(t: Translator) -> Labels:
    return Labels(
        invoice=t.pgettext("invoice", "Invoice"),
        draft=t.pgettext("invoice", "DRAFT"),
        seller=t.pgettext("invoice", "Seller"),
        buyer=t.pgettext("invoice", "Bill to"),
        vat_id=t.pgettext("invoice", "VAT ID"),
        issue_date=t.pgettext("invoice", "Issue date"),
        supply_period=t.pgettext("invoice", "Supply period"),
        due_date=t.pgettext("invoice", "Due date"),
        paid_on=t.pgettext("invoice", "Paid on"),
        description=t.pgettext("invoice", "Description"),
        quantity=t.pgettext("invoice", "Qty"),
        unit_price=t.pgettext("invoice", "Unit price (net)"),
        amount=t.pgettext("invoice", "Amount (net)"),
        subtotal=t.pgettext("invoice", "Subtotal (net)"),
        vat=t.pgettext("invoice", "VAT"),
        total=t.pgettext("invoice", "Total"),
        reverse_charge=t.pgettext("invoice", "Reverse charge"),
        notes=t.pgettext("invoice", "Notes"),
        payment_terms=t.pgettext("invoice", "Payment terms"),
        bank=t.pgettext("invoice", "Bank details"),
        pay_online=t.pgettext("invoice", "Pay online:"),
        statuses={
            "paid": t.pgettext("invoice", "Paid"),
            "cancelled": t.pgettext("invoice", "Cancelled"),
        },
        credit_note=t.pgettext("invoice", "Credit note"),
        credits=t.pgettext("invoice", "Credits invoice"),
    )
