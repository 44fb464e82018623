"""The invoice document an EU accountant accepts (DESIGN §8, Directive 2006/112/EC art. 226):
the buyer's billing details set with ``/tenant set``, every mandatory field in the PDF, reverse
charge, the DRAFT marking and the issue date, and names in any script."""

from __future__ import annotations

import io
import logging
import re
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from billing.invoicing.pdf import render_invoice
from bot.app import App
from core.errors import UsageError
from storage.models import AuditLog
from tests.conftest import AppFactory, admin, tenant_with_tokens


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


DEC_3 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)

ISSUER = {
    "COMPANY_NAME": "Switchboard SAS",
    "COMPANY_ADDRESS": "12 rue de la Paix\\n75002 Paris",
    "COMPANY_VAT_ID": "FR40123456789",
    "COMPANY_COUNTRY": "fr",
    "COMPANY_LEGAL_ID": "SIREN 123 456 789 RCS Paris",
    "COMPANY_BANK": "IBAN FR76 3000 6000 0112 3456 7890 189\\nBIC AGRIFRPP",
    "INVOICE_PAYMENT_TERMS": "Payment within 30 days. Late payment: 3x legal interest rate",
}


async def _details(app: App, slug: str) -> dict[str, object]:
    return dict((await admin(app, "tenant", "show", slug)).data)


# -- /tenant set ---------------------------------------------------------------------------------


async def test_tenant_set_changes_what_is_given_audited_before_after(app: App) -> None:
    await tenant_with_tokens(app, "gmbh", tokens=0)
    done = await admin(
        app, "tenant", "set", "gmbh", "--name", "Müller Technik GmbH",
        "--address", "Hauptstraße 5\n10115 Berlin", "--country", "de",
        "--vat-id", "de 123.456.789", "--vat-rate", "19%", "--language", "de",
    )  # fmt: skip
    assert "country DE" in done.text and "vat_id DE123456789" in done.text
    shown = await _details(app, "gmbh")
    assert (
        shown["name"] == "Müller Technik GmbH" and shown["address"] == "Hauptstraße 5\n10115 Berlin"
    )
    assert (shown["country"], shown["vat_id"], shown["language"]) == ("DE", "DE123456789", "de")
    assert shown["vat_rate"] == "0.19" and shown["billing_currency"] == "EUR"

    # What is not given is unchanged; "none" removes an optional detail.
    await admin(app, "tenant", "set", "gmbh", "--currency", "chf", "--language", "none")
    shown = await _details(app, "gmbh")
    assert shown["billing_currency"] == "CHF" and shown["language"] is None
    assert shown["vat_id"] == "DE123456789" and shown["name"] == "Müller Technik GmbH"

    async with app.deps.sessions() as session:
        entries = (
            await session.scalars(
                select(AuditLog).where(AuditLog.action == "tenant.set").order_by(AuditLog.id)
            )
        ).all()
    assert len(entries) == 2
    assert entries[0].target == "gmbh"
    assert entries[0].before["country"] is None and entries[0].after["country"] == "DE"
    assert entries[1].before["language"] == "de" and entries[1].after["language"] is None


@pytest.mark.parametrize(
    ("words", "problem"),
    [
        (["--country", "France"], "country code"),
        (["--country", "ZZ"], "ISO 3166"),
        (["--vat-id", "123456789"], "VAT ID"),
        (["--vat-id", "DE1"], "VAT ID"),
        (["--vat-id", "DE12345678901234"], "VAT ID"),
        (["--vat-rate", "1.5"], "from 0 to 1"),
        (["--vat-rate", "-0.2"], "sign"),
        (["--vat-rate", "1,050"], "ambiguous"),
        (["--currency", "EURO"], "currency code"),
        (["--currency", "ABC"], "ISO 4217"),
        (["--language", "es"], "not one of en, fr, de"),
        (["--email", "nobody"], "email"),
        (["--name", ""], "empty"),
        ([], "at least one"),
    ],
)
async def test_tenant_set_bad_input_changes_nothing(
    app: App, words: list[str], problem: str
) -> None:
    await tenant_with_tokens(app, "acme", tokens=0)
    before = await _details(app, "acme")
    # A valid detail beside the bad one is not set either.
    valid = ["--address", "1 Main St"] if words else []
    with pytest.raises(UsageError) as refused:
        await admin(app, "tenant", "set", "acme", *valid, *words)
    assert (
        problem in refused.value.user_message and "Usage: /tenant set" in refused.value.user_message
    )
    assert await _details(app, "acme") == before


# -- the PDF ---------------------------------------------------------------------------------------


def _text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def _squeezed(text: str) -> str:
    """Without white space: pypdf spaces out (or NUL-separates) the glyphs of a fallback font,
    and Babel groups thousands with U+202F."""
    return re.sub(r"[\s\x00]+", "", text)


async def _issued(app: App, slug: str, *, send: bool = True) -> tuple[str, bytes]:
    """An invoice of 2 × 50.00 for ``slug`` (sent unless ``send`` is False) and its PDF."""
    doc = (
        await admin(app, "invoice", "new", slug, "50", "Assistant", "hours", "東京", "--qty", "2")
    ).data
    number = str(doc["number"])
    invoices = app.deps.invoices
    if send:
        await invoices.send(number, actor="test")
    pdf = render_invoice(await invoices.view(number), invoices.config.issuer)
    return number, pdf


async def _buyer(app: App, slug: str, name: str, *details: str) -> None:
    await tenant_with_tokens(app, slug, tokens=0)
    await admin(app, "tenant", "set", slug, "--name", name, *details)


def _issuer_fields(text: str) -> None:
    squeezed = _squeezed(text)
    for value in ("Switchboard SAS", "12 rue de la Paix", "75002 Paris", "FR40123456789",
                  "SIREN 123 456 789 RCS Paris", "IBAN FR76 3000 6000 0112 3456 7890 189",
                  "BIC AGRIFRPP", "Late payment: 3x legal interest rate"):  # fmt: skip
        assert _squeezed(value) in squeezed, value


async def test_french_buyer_all_mandatory_fields_in_french(make_app: AppFactory) -> None:
    app = await make_app(clock=Clock(DEC_3), **ISSUER)
    await _buyer(app, "dupont", "Dupont & Fils SARL", "--address", "3 place Bellecour\n69002 Lyon",
                 "--country", "FR", "--vat-id", "FR12345678901", "--language", "fr")  # fmt: skip
    number, pdf = await _issued(app, "dupont")
    text = _text(pdf)
    squeezed = _squeezed(text)
    _issuer_fields(text)
    for value in (f"Facture {number}", "Dupont & Fils SARL", "3 place Bellecour", "69002 Lyon",
                  "France", "FR12345678901", "Date d'émission:", "3 décembre 2026",
                  "Période de prestation:", "Échéance:", "2 janvier 2027",
                  "Prix unitaire HT", "Montant HT", "Assistanthours",
                  "50,00 EUR", "100,00 EUR", "TVA 20 %", "20,00 EUR", "Total TTC", "120,00 EUR",
                  "Conditions de paiement", "Coordonnées bancaires"):  # fmt: skip
        assert _squeezed(value) in squeezed, value
    assert "Autoliquidation" not in text and "BROUILLON" not in text
    assert "東京" in squeezed


async def test_german_gmbh_with_vat_id_is_reverse_charged(make_app: AppFactory) -> None:
    app = await make_app(clock=Clock(DEC_3), **ISSUER)
    await _buyer(app, "mueller", "Müller Technik GmbH", "--address",
                 "Hauptstraße 5\n10115 Berlin", "--country", "DE", "--vat-id", "DE123456789",
                 "--language", "de")  # fmt: skip
    number, pdf = await _issued(app, "mueller")
    shown = (await admin(app, "invoice", "show", number)).data
    assert (shown["vat_rate"], shown["vat"], shown["total"]) == ("0.00", "0.00", "100.00")
    text = _text(pdf)
    squeezed = _squeezed(text)
    _issuer_fields(text)
    for value in (f"Rechnung {number}", "Müller Technik GmbH", "Hauptstraße 5", "10115 Berlin",
                  "Deutschland", "Rechnungsdatum:", "3. Dezember 2026", "Leistungszeitraum:",
                  "USt. 0 %", "0,00 EUR", "100,00 EUR",
                  "Steuerschuldnerschaft des Leistungsempfängers",
                  "USt-IdNr. (Verkäufer): FR40123456789",
                  "USt-IdNr. (Rechnungsempfänger): DE123456789"):  # fmt: skip
        assert _squeezed(value) in squeezed, value
    assert "119,00" not in squeezed and "120,00" not in squeezed


async def test_draft_vat_follows_the_tenant_until_sent(make_app: AppFactory) -> None:
    """A draft made before the buyer's VAT ID was known is reverse-charged when it is sent."""
    app = await make_app(clock=Clock(DEC_3), **ISSUER)
    await _buyer(app, "later", "Later BV", "--country", "NL")
    number, _ = await _issued(app, "later", send=False)
    assert (await admin(app, "invoice", "show", number)).data["total"] == "120.00"
    await admin(app, "tenant", "set", "later", "--vat-id", "NL123456789B01")
    await app.deps.invoices.send(number, actor="test")
    shown = (await admin(app, "invoice", "show", number)).data
    assert (shown["vat"], shown["total"]) == ("0.00", "100.00")


async def test_any_script_renders_and_nothing_is_dropped(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = await make_app(clock=Clock(DEC_3), **ISSUER)
    address = "1-2-3 Marunouchi 🚀 ✨\nChiyoda-ku, Tokyo\nمكتب دبي، شارع الشيخ زايد"
    await _buyer(app, "tokyo", "東京商事株式会社", "--address", address, "--country", "JP")
    caplog.set_level(logging.DEBUG)
    number, pdf = await _issued(app, "tokyo")
    text = _text(pdf)
    squeezed = _squeezed(text)
    _issuer_fields(text)
    for value in (f"Invoice {number}", "東京商事株式会社", "Japan", "Issue date:",
                  "December 3, 2026", "Supply period:", "Qty", "Unit price (net)",
                  "50.00 EUR", "100.00 EUR", "VAT 20 %", "20.00 EUR", "120.00 EUR",
                  "Payment terms", "Bank details"):  # fmt: skip
        assert _squeezed(value) in squeezed, value
    # Emoji are monochrome glyphs, kept as text; Arabic is shaped (joined, right to left) by
    # HarfBuzz, so its glyphs are presentation forms: the words are there, none replaced.
    assert "🚀" in text and "✨" in text
    assert "Chiyoda-ku, Tokyo" in text, "Latin after CJK and emoji runs keeps its glyphs"
    assert "\ufffd" not in text
    logged = [r for r in caplog.records if r.name.startswith(("fpdf", "fontTools"))]
    assert not [r for r in logged if "missing" in r.getMessage().lower()]
    assert not [r for r in logged if r.name.startswith("fontTools") and r.levelno < logging.WARNING]


async def test_a_draft_says_draft_and_has_no_issue_date(make_app: AppFactory) -> None:
    app = await make_app(clock=Clock(DEC_3), **ISSUER)
    await _buyer(app, "acme", "Acme Ltd", "--country", "IE")
    _, pdf = await _issued(app, "acme", send=False)
    text = _text(pdf)
    assert "DRAFT" in text
    assert "Issue date" not in text and "December 3, 2026" not in text


async def test_a_tenant_without_a_language_gets_the_default_language(make_app: AppFactory) -> None:
    app = await make_app(clock=Clock(DEC_3), DEFAULT_LANGUAGE="de", **ISSUER)
    await _buyer(app, "stumm", "Stumm GmbH", "--country", "AT")
    number, pdf = await _issued(app, "stumm")
    text = _text(pdf)
    assert f"Rechnung {number}" in text and "Rechnungsdatum" in text
    await admin(app, "tenant", "set", "stumm", "--language", "en")
    english = render_invoice(await app.deps.invoices.view(number), app.deps.invoices.config.issuer)
    assert f"Invoice {number}" in _text(english), "the tenant's own choice wins"
