"""Languages (DESIGN §3 DEFAULT_LANGUAGE, §9): the gettext catalogs are complete and compiled,
the language is resolved in the documented order, and an invoice document is written in its
tenant's language through the catalog."""

from __future__ import annotations

import io
import re
import string
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader

from billing.invoicing.pdf import render_invoice
from bot.app import LOCALE_DIR
from core.i18n import LANGUAGES, Translators, lazy, lazy_plural, resolve_language
from core.i18n_catalogs import TRANSLATED, extract, po_path, read, stale, untranslated
from tests.conftest import AppFactory, admin, tenant_with_tokens

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def translators() -> Translators:
    return Translators(LOCALE_DIR)


# -- the catalogs ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template():  # type: ignore[no-untyped-def]
    return extract(ROOT)


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_marked_message_is_translated(template, language: str) -> None:  # type: ignore[no-untyped-def]
    """Fails when code marks a message (``t``, ``_``, ``N_``, ``lazy``...) that a catalog lacks:
    run ``python3 tasks.py i18n`` and translate what it lists."""
    catalog = read(po_path(LOCALE_DIR, language), language)
    assert untranslated(template, catalog) == []
    assert len(template) > 60  # the extraction really found the marked messages


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_every_placeholder(language: str) -> None:
    for message in read(po_path(LOCALE_DIR, language), language):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set().union(*(_fields(i) for i in ids)) - {"n"}
        for translated in strings:
            assert _fields(translated) - {"n"} == wanted, (message.id, translated)


@pytest.mark.parametrize("language", TRANSLATED)
def test_compiled_catalog_matches_its_po(language: str) -> None:
    """The committed ``.mo`` is what the product loads: it must say what the ``.po`` says."""
    assert not stale(LOCALE_DIR, language)


def test_the_catalog_is_what_the_translator_uses(translators: Translators) -> None:
    fr, de = translators.get("fr"), translators.get("de")
    assert fr.pgettext("invoice", "Total") == "Total TTC"
    assert (
        de.pgettext("invoice", "Reverse charge") == "Steuerschuldnerschaft des Leistungsempfängers"
    )
    assert translators.get("en").pgettext("invoice", "Total") == "Total"
    # An unknown message reads as written; an unknown language is the default one.
    assert fr("Not in any catalog {x}", x=1) == "Not in any catalog 1"
    assert translators.get("es") is translators.get(None) is translators.get("en")


# -- resolution ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chosen", "client", "tenant", "default", "expected"),
    [
        ("de", "fr", "en", "en", "de"),  # the member's /language first
        (None, "fr-CA", "de", "en", "fr"),  # then Telegram's language_code, first two letters
        (None, "es", "de", "en", "de"),  # a client language we do not speak is skipped
        (None, None, "de", "fr", "de"),  # then the tenant's
        (None, "pt-BR", None, "fr", "fr"),  # then DEFAULT_LANGUAGE
        ("xx", "", "", "de", "de"),
        (None, "FR", None, "en", "fr"),
    ],
)
def test_language_resolution_order(
    chosen: str | None, client: str | None, tenant: str | None, default: str, expected: str
) -> None:
    assert resolve_language(chosen=chosen, client=client, tenant=tenant, default=default) == (
        expected
    )


def test_unknown_default_language_is_refused() -> None:
    with pytest.raises(ValueError, match="default language"):
        Translators(LOCALE_DIR, default="es")


# -- formats and lazy messages ---------------------------------------------------------------------


def test_formats_follow_the_language(translators: Translators) -> None:
    amount = Decimal("1234.5")
    en, fr, de = (translators.get(lang) for lang in LANGUAGES)
    assert en.money(amount, "EUR") == "1,234.50 EUR"
    assert fr.money(amount, "EUR") == "1\u202f234,50 EUR"
    assert de.money(amount, "EUR") == "1.234,50 EUR"
    assert de.money(Decimal(1000), "JPY") == "1.000 JPY"  # the currency's own places
    assert fr.date(date(2026, 12, 3)) == "3 décembre 2026"
    assert de.date(datetime(2026, 12, 3, tzinfo=UTC)) == "3. Dezember 2026"
    assert de.month(2026, 3) == "März 2026"
    assert fr.country("DE") == "Allemagne" and de.country("FR") == "Frankreich"
    assert fr.number(Decimal("19.6")) == "19,6"


def test_lazy_messages_render_in_the_readers_language(translators: Translators) -> None:
    refusal = lazy("Permission denied: {action} needs the {role} role.", action="/x", role="admin")
    assert str(refusal) == "Permission denied: /x needs the admin role."
    assert "/x" in translators.get("fr").text(refusal) != str(refusal)
    calls = lazy_plural("{n} call", "{n} calls", 1200)
    assert str(calls) == "1200 calls"
    assert translators.get("de").text(calls) == "1.200 Aufrufe"
    assert translators.get("fr").ngettext("{n} call", "{n} calls", 0) == "0 appel"


# -- documents -------------------------------------------------------------------------------------


def _pdf_text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return re.sub(r"[\s\x00]+", "", "\n".join(page.extract_text() for page in reader.pages))


class Clock:
    def __call__(self) -> datetime:
        return datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


async def test_german_tenant_gets_its_invoice_in_german(make_app: AppFactory) -> None:
    app = await make_app(clock=Clock(), COMPANY_NAME="Switchboard SAS", COMPANY_COUNTRY="fr")
    await tenant_with_tokens(app, "gmbh", tokens=0)
    await admin(app, "tenant", "set", "gmbh", "--name", "Müller GmbH", "--country", "DE",
                "--language", "de", "--vat-rate", "19%")  # fmt: skip
    number = str((await admin(app, "invoice", "new", "gmbh", "1234.5", "Beratung")).data["number"])
    invoices = app.deps.invoices
    await invoices.send(number, actor="test")
    view = await invoices.view(number)
    text = _pdf_text(render_invoice(view, invoices.config.issuer))
    for expected in (f"Rechnung{number}", "Rechnungsdatum:", "3.Dezember2026", "Deutschland",
                     "Einzelpreis(netto)", "1.234,50EUR", "USt.19%", "Gesamtbetrag",
                     "1.469,06EUR", "Fälligam:", "2.Januar2027"):  # fmt: skip
        assert expected in text, expected
    assert "Invoice" not in text and "Total" not in text
    # The message its chats and e-mail get with the PDF speaks German too.
    t = invoices.config.issuer.translator("de")
    assert view.delivery_text(t, "Switchboard SAS") == (
        f"Rechnung {number} von Switchboard SAS: 1.469,06 EUR, fällig am 2. Januar 2027."
    )
    assert view.caption(t) == f"Rechnung {number}: 1.469,06 EUR"


async def test_tenant_without_language_gets_default_language(make_app: AppFactory) -> None:
    app = await make_app(clock=Clock(), DEFAULT_LANGUAGE="fr")
    await tenant_with_tokens(app, "acme", tokens=0)
    number = str((await admin(app, "invoice", "new", "acme", "10", "Conseil")).data["number"])
    view = await app.deps.invoices.view(number)
    text = _pdf_text(render_invoice(view, app.deps.invoices.config.issuer))
    assert f"Facture{number}" in text and "BROUILLON" in text and "TotalTTC" in text
