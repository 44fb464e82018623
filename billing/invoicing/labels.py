"""What an invoice document says, in each language it is written in (en, fr, de).

The reverse-charge mentions are the ones each country's tax administration expects:
"Reverse charge", "Autoliquidation" (CGI art. 283-2), "Steuerschuldnerschaft des
Leistungsempfängers" (UStG §14a).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Languages a document can be written in; anything else falls back to English.
LANGUAGES = ("en", "fr", "de")


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
    statuses: dict[str, str] = field(default_factory=dict)
    credit_note: str = "Credit note"
    #: Followed by the number of the invoice a credit note credits.
    credits: str = "Credits invoice"


_LABELS = {
    "en": Labels(
        invoice="Invoice", draft="DRAFT", seller="Seller", buyer="Bill to", vat_id="VAT ID",
        issue_date="Issue date", supply_period="Supply period", due_date="Due date",
        paid_on="Paid on", description="Description", quantity="Qty",
        unit_price="Unit price (net)", amount="Amount (net)", subtotal="Subtotal (net)",
        vat="VAT", total="Total", reverse_charge="Reverse charge", notes="Notes",
        payment_terms="Payment terms", bank="Bank details", pay_online="Pay online:",
        statuses={"paid": "Paid", "cancelled": "Cancelled"},
    ),
    "fr": Labels(
        invoice="Facture", draft="BROUILLON", seller="Vendeur", buyer="Client",
        vat_id="N° TVA", issue_date="Date d'émission", supply_period="Période de prestation",
        due_date="Échéance", paid_on="Payée le", description="Désignation", quantity="Qté",
        unit_price="Prix unitaire HT", amount="Montant HT", subtotal="Total HT", vat="TVA",
        total="Total TTC", reverse_charge="Autoliquidation", notes="Notes",
        payment_terms="Conditions de paiement", bank="Coordonnées bancaires",
        pay_online="Payer en ligne :", statuses={"paid": "Payée", "cancelled": "Annulée"},
        credit_note="Avoir", credits="Avoir sur la facture",
    ),
    "de": Labels(
        invoice="Rechnung", draft="ENTWURF", seller="Verkäufer", buyer="Rechnungsempfänger",
        vat_id="USt-IdNr.", issue_date="Rechnungsdatum", supply_period="Leistungszeitraum",
        due_date="Fällig am", paid_on="Bezahlt am", description="Beschreibung",
        quantity="Menge", unit_price="Einzelpreis (netto)", amount="Betrag (netto)",
        subtotal="Zwischensumme (netto)", vat="USt.", total="Gesamtbetrag",
        reverse_charge="Steuerschuldnerschaft des Leistungsempfängers", notes="Hinweise",
        payment_terms="Zahlungsbedingungen", bank="Bankverbindung", pay_online="Online bezahlen:",
        statuses={"paid": "Bezahlt", "cancelled": "Storniert"},
        credit_note="Rechnungskorrektur", credits="Korrektur der Rechnung",
    ),
}  # fmt: skip


def labels_for(language: str | None) -> Labels:
    return _LABELS.get(language or "en", _LABELS["en"])
