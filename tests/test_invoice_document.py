"""The invoice document an EU accountant accepts (DESIGN §8, Directive 2006/112/EC art. 226):
the buyer's billing details set with ``/tenant set``, every mandatory field in the PDF, reverse
charge, the DRAFT marking and the issue date, and names in any script."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.app import App
from core.errors import UsageError
from storage.models import AuditLog
from tests.conftest import admin, tenant_with_tokens


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


DEC_3 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)

ISSUER = {
    "COMPANY_NAME": "Switchboard SAS",
    "COMPANY_ADDRESS": "12 rue de la Paix\\n75002 Paris\\nFrance",
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
