"""The operator's console in the reader's language (DESIGN §9): /assistant, /library, /export,
/pack, /plan, /payments, /invoice and /config answer a French or German admin or member in
their language through the fake Telegram, while command names, slugs and --json stay English."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import admin, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.stripe_server import FakeStripeServer
from tests.fakes.telegram_server import FakeTelegramServer, StoredMessage
from tests.test_payments import stripe_env
from tests.test_telegram import Running, Start, start, telegram  # noqa: F401 (fixtures)

READER = 440066


def _from(fake: FakeTelegramServer, text: str, language: str) -> dict[str, Any]:
    update = fake.private_message(READER, text, first_name="Jeanne")
    update["message"]["from"]["language_code"] = language
    return update


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripeServer]:
    async with FakeStripeServer() as server:
        yield server


async def _replies(run: Running, text: str, language: str, count: int = 1) -> list[StoredMessage]:
    """The bot's next ``count`` messages (texts, or files with their captions) to ``text``."""
    before = len(run.fake.chat_messages(READER))
    await run.fake.send_update(_from(run.fake, text, language))
    await run.fake.wait_for(lambda: len(run.fake.chat_messages(READER)) >= before + count)
    return run.fake.chat_messages(READER)[before:]


async def _reply(run: Running, text: str, language: str) -> StoredMessage:
    return (await _replies(run, text, language))[-1]


async def _ask(run: Running, text: str, language: str = "fr") -> str:
    reply = await _reply(run, text, language)
    assert reply.text is not None, reply
    return reply.text


async def test_french_admin_assistants_library_and_export(start: Start) -> None:  # noqa: F811
    run = await start(SUPERADMINS=f"telegram:{READER}")
    code = await tenant_with_tokens(run.app, "dupont")
    await _ask(run, f"/start {code}")

    assert await _ask(run, "/assistant disable analyst") == "analyst désactivé."
    listed = (await _ask(run, "/assistant list")).splitlines()
    assert any(line.startswith("analyst ") and line.endswith(" (désactivé)") for line in listed)
    assert await _ask(run, "/assistant enable analyst --tenant dupont") == (
        "analyst@dupont activé."
    )
    exists = await _ask(run, "/assistant create general --name G --prompt p")
    assert exists.splitlines()[0] == "L'assistant « general » existe déjà."
    override = await _ask(run, "/assistant override general --tenant dupont")
    assert override == (
        "general pour dupont, actuellement : nom General assistant (son propre nom) ; "
        "prompt système celui de l'assistant."
    )
    stats = await _ask(run, "/assistant stats 30d")
    assert "30 derniers jours (du " in stats
    assert "utilisations" in stats and "ms p95" in stats and "réussite" in stats

    assert await _ask(run, "/library") == "La bibliothèque est encore vide."
    assert await _ask(run, "/library archived") == "Aucun élément archivé."
    assert await _ask(run, "/library chat") == "Aucun résultat."

    export = await _reply(run, "/export ledger dupont", "fr")
    assert export.document is not None
    assert export.caption == "Export du journal des jetons (dupont, depuis le début) : 1 ligne"
    refused = await _ask(run, "/export usage --out x.csv")
    assert refused.splitlines()[0] == (
        "--out FILE est réservé au shell ; dans un chat, le fichier est envoyé directement."
    )

    # The same replies for an English app, exactly as before.
    assert await _ask(run, "/library archived", "en") == "Nothing archived."
    export = await _reply(run, "/export ledger dupont", "en")
    assert export.caption == "Ledger export (dupont, all time): 1 row"


async def test_german_admin_packs_and_plans(start: Start) -> None:  # noqa: F811
    run = await start(SUPERADMINS=f"telegram:{READER}")

    async def ask(text: str) -> str:
        return await _ask(run, text, "de")

    packs = (await ask("/pack list")).splitlines()
    assert packs[0].split() == ["starter", "Starter", "500.000", "Token", "5,00", "EUR"]
    assert await ask("/pack set starter --active no --stars 250") == (
        "Paket starter geändert: 500.000 Token für 5,00 EUR oder 250 Stars (nicht im Verkauf)."
    )
    assert (await ask("/pack set mini")).splitlines()[0] == (
        "Ein neues Paket braucht --tokens und --price."
    )

    plans = (await ask("/plan list")).splitlines()
    assert "Nutzungskosten × 1,30 + 0,00 EUR pro Monat" in plans[1]
    assert plans[0].endswith("im Voraus gekaufte Token-Pakete")
    assert await ask("/plan set pro --price 30") == (
        "Tarif geändert: pro          Pro            subscription "
        "30,00 EUR/Monat, 5.000.000 Token inklusive"
    )
    assert (await ask("/plan set prepaid --active no")).splitlines()[0] == (
        "Beendete Abonnements wechseln in den Tarif prepaid; er bleibt daher angeboten."
    )
    assert (await ask("/plan set pro --stars 20000")).splitlines()[0] == (
        "Telegram erlaubt für ein Abonnement höchstens 10.000 Stars pro Monat."
    )

    # English, as it always read.
    assert await _ask(run, "/pack set starter --active yes", "en") == (
        "Pack starter updated: 500,000 tokens for 5.00 EUR or 250 Stars."
    )


async def test_german_admin_payments_and_invoices(
    start: Start,  # noqa: F811
    stripe_api: FakeStripeServer,
) -> None:
    run = await start(SUPERADMINS=f"telegram:{READER}", **stripe_env(stripe_api))
    code = await tenant_with_tokens(run.app, "mueller")
    await admin(run.app, "tenant", "set", "mueller", "--name", "Müller GmbH")

    async def ask(text: str) -> str:
        return await _ask(run, text, "de")

    await ask(f"/start {code}")
    await ask("/buy pro")  # a payment link: a pending payment
    [pending] = (await admin(run.app, "payments")).data
    listed = await ask("/payments mueller")
    assert listed.endswith(" pack pro 2.000.000 Token 15,00 EUR ausstehend")
    assert (await ask(f"/payments refund {pending['id']}")) == (
        f"Zahlung #{pending['id']} ist ausstehend: Es ist nichts eingegangen, "
        "also gibt es nichts zu erstatten."
    )
    assert await ask("/payments refund 999") == "Keine Zahlung #999."
    assert await ask("/payments --status refunded") == "Keine Zahlungen."

    created = (await ask("/invoice new mueller 1234.50 Beratung")).splitlines()
    [invoice] = (await admin(run.app, "invoice", "list")).data
    number = invoice["number"]
    assert created[0] == f"Angelegt: {number} mueller Entwurf 1.481,40 EUR."
    assert created[1] == f"Rechnung {number} an Müller GmbH (mueller): Entwurf"
    assert created[2].startswith("Ausgestellt am ")
    assert created[3:] == [
        "• Beratung: 1 × 1.234,50 EUR = 1.234,50 EUR",
        "Zwischensumme (netto) 1.234,50 EUR",
        "USt. 20 % 246,90 EUR",
        "Gesamtbetrag 1.481,40 EUR",
    ]
    text, pdf = await _replies(run, f"/invoice show {number}", "de", count=2)
    assert text.text is not None and text.text.startswith(f"Rechnung {number} an Müller GmbH")
    assert pdf.document is not None and pdf.caption == f"Rechnung {number}: 1.481,40 EUR"
    assert await ask("/invoice list") == f"{number} mueller Entwurf 1.481,40 EUR"
    assert (await ask("/invoice generate")).splitlines()[0] == (
        "Nennen Sie eine Organisation oder --all."
    )
    assert (await ask("/invoice show INV-1")).splitlines()[0] == (
        "Argument NUMBER: 'INV-1' ist keine Rechnungsnummer wie INV-2026-0001 "
        "(oder Gutschriftnummer wie CN-2026-0001)."
    )

    # English, as it always read.
    assert await _ask(run, "/invoice list", "en") == f"{number} mueller draft 1481.40 EUR"
    # The summary, then the PDF: wait for both (the first alone has no caption).
    english = (await _replies(run, f"/invoice show {number}", "en", count=2))[-1]
    assert english.caption == f"Invoice {number}: 1481.40 EUR"


async def test_french_media_refusals_and_operator_texts(
    start: Start,  # noqa: F811
    llm: FakeLLMServer,
) -> None:
    run = await start(SUPERADMINS=f"telegram:{READER}")
    code = await tenant_with_tokens(run.app, "dupont")
    await _ask(run, f"/start {code}")

    assert await _ask(run, "/speak Bonjour à tous") == (
        "Aucun assistant ne peut produire de voix ici. "
        "Demandez à votre fournisseur d'en activer un."
    )
    llm.fail_next(500)
    assert await _ask(run, "/image un carré rouge") == (
        "L'image n'a pas pu être créée (le fournisseur a répondu HTTP 500). Rien n'a été facturé."
    )

    assert (await _ask(run, "/paysupport")).startswith(
        "Assistance paiement : écrivez-nous au sujet d'un paiement"
    )
    too_long = await _ask(run, "/config set terms " + "x" * 3600)
    assert too_long.splitlines()[0] == (
        "Le texte fait 3\u202f600 caractères ; 3\u202f500 au maximum."
    )
    assert await _ask(run, "/config set terms Conditions : voir le contrat.") == (
        "/terms répond désormais :\nConditions : voir le contrat."
    )
    assert await _ask(run, "/terms") == "Conditions : voir le contrat."
    # English, as it always read.
    assert (await _ask(run, "/config set terms " + "x" * 3600, "en")).splitlines()[0] == (
        "The text is 3,600 characters; at most 3,500."
    )
