"""Errors and refusals in the reader's language (DESIGN §9): what a French or German member reads
when Stripe fails, when the balance is used up, when Stars or an invoice refuse, when a Slack file
is too large, the pages shown after a Stripe checkout and a file saved by `switchboard chat`,
through the fake Bot API, the fake Slack, the fake Stripe and the CLI."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.app import App
from bot.channels import build_slack_channel
from bot.cli import main
from bot.http import build_web_app
from bot.service import ServiceRunner
from core.errors import SwitchboardError
from tests.conftest import AppFactory, admin, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.slack_server import FakeSlackServer, message_event
from tests.fakes.stripe_server import FakeStripeServer, StripeRequest
from tests.fakes.telegram_server import FakeTelegramServer
from tests.test_payments import stripe_env
from tests.test_slack import FAST, Harness, slack, slack_env  # noqa: F401 (fixture)
from tests.test_stars import Shop
from tests.test_stars import _service as stars_service
from tests.test_telegram import Running, Start, start, telegram  # noqa: F401 (fixtures)

MEMBER = 660066


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripeServer]:
    async with FakeStripeServer() as server:
        yield server


async def _ask(run: Running, text: str, language: str | None = "fr") -> str:
    """``text`` from a Telegram app set to ``language``; the bot's last answer."""
    update = run.fake.private_message(MEMBER, text, first_name="Amélie")
    sender: dict[str, Any] = update["message"]["from"]
    sender.pop("language_code", None)
    if language:
        sender["language_code"] = language
    before = len(run.fake.chat_messages(MEMBER))
    await run.fake.send_update(update)
    await run.fake.wait_for_bot_messages(MEMBER, before + 1)
    return run.fake.bot_texts(MEMBER)[-1]


def _buttons(run: Running) -> list[str]:
    markup = run.fake.calls_to("sendMessage", chat_id=MEMBER)[-1].params.get("reply_markup")
    if isinstance(markup, str):
        markup = json.loads(markup)
    return [row[0]["text"] for row in (markup or {}).get("inline_keyboard", [])]


def _product(request: StripeRequest) -> str:
    return str(request.params["line_items"][0]["price_data"]["product_data"]["name"])


async def test_french_member_reads_stripe_failures_and_the_top_up_offer_in_french(
    start: Start,  # noqa: F811
    stripe_api: FakeStripeServer,
) -> None:
    run = await start(**stripe_env(stripe_api))
    code = await tenant_with_tokens(run.app, "dupont", tokens=0)
    await _ask(run, f"/start {code}")

    stripe_api.fail_next(500, count=3)  # the first try and both of the SDK's retries
    down = await _ask(run, "/buy pro")
    assert down == (
        "Le service de paiement ne répond pas pour le moment. "
        "Veuillez réessayer dans quelques minutes."
    )

    # The balance used up: the refusal, the plans and one button per pack, all in French.
    refused = await _ask(run, "Bonjour")
    assert refused.startswith("Votre solde de jetons est épuisé.")
    assert refused.splitlines()[-1] == "Rechargez maintenant :"
    assert _buttons(run) == [
        "Starter : 500\u202f000 jetons pour 5,00 EUR",
        "Pro : 2\u202f000\u202f000 jetons pour 15,00 EUR",
        "Enterprise : 10\u202f000\u202f000 jetons pour 50,00 EUR",
    ]
    # Stripe's page names what is bought in the language the member chose with /language
    # (the app's language is not known outside a reply; the organisation's is English here).
    assert [_product(r) for r in stripe_api.created()] == [
        "Starter: 500,000 tokens",
        "Pro: 2,000,000 tokens",
        "Enterprise: 10,000,000 tokens",
    ]
    await _ask(run, "/language fr")
    await _ask(run, "/subscribe pro")  # (the packs' links above are given again, not remade)
    assert _product(stripe_api.created()[-1]) == "Pro : 5\u202f000\u202f000 jetons"


async def test_stars_refusals_and_notices_in_french_and_a_refund_refusal_in_german(
    make_app: AppFactory,
) -> None:
    async with FakeTelegramServer() as fake:
        service = await stars_service(make_app, fake)
        try:
            await admin(service.app, "pack", "set", "pro", "--stars", "750")
            code = await tenant_with_tokens(service.app, "dupont")
            # Notices are written outside a reply: the organisation's language counts there.
            await admin(service.app, "tenant", "set", "dupont", "--language", "fr")
            run = Running(service.app, service, service.channels[0], fake)  # type: ignore[arg-type]
            await _ask(run, f"/start {code}")

            # The starter plan has no Stars price; Telegram refuses to make the pro invoice.
            assert await _ask(run, "/subscribe starter") == (
                "La formule « starter » n'a pas encore de prix en Telegram Stars. "
                "Veuillez vous adresser à votre administrateur."
            )
            fake.fail_next("sendInvoice", 400, description="Bad Request: CURRENCY_INVALID")
            assert await _ask(run, "/buy pro") == (
                "Telegram n'a pas pu créer la facture pour le moment ; veuillez réessayer."
            )

            # The invoice and, paid, the notice in French. Then Telegram refuses the refund
            # (the refusal as a German admin reads it), and accepts it (its notice in French).
            await _ask(run, "/buy pro")  # the invoice, then its reply
            invoice = fake.invoices[-1]
            assert invoice["description"] == "2\u202f000\u202f000 jetons pour Dupont"
            _, paid = await fake.pay(MEMBER, invoice)
            assert paid is not None
            shop = Shop(fake, service)
            await shop.settle()
            assert re.fullmatch(
                r"Paiement reçu : \+2\u202f000\u202f000 jetons, solde 2\u202f100\u202f000\. "
                r"Reçu INV-\d{4}-0001\.",
                fake.bot_texts(MEMBER)[-1],
            ), fake.bot_texts(MEMBER)[-1]
            [done] = [
                p for p in (await admin(service.app, "payments")).data if p["status"] == "paid"
            ]
            fake.fail_next("refundStarPayment", 400, description="Bad Request: CHARGE_NOT_FOUND")
            with pytest.raises(SwitchboardError) as refused:
                await admin(service.app, "payments", "refund", str(done["id"]))
            german = service.app.deps.translators.get("de")
            assert refused.value.localized(german) == (
                "Telegram hat die Erstattung abgelehnt: Bad Request: CHARGE_NOT_FOUND"
            )
            await admin(service.app, "payments", "refund", str(done["id"]))
            await shop.settle()
            assert fake.bot_texts(MEMBER)[-1] == (
                "Remboursement effectué : retour de 750 Stars, -2\u202f000\u202f000 jetons, "
                "solde 100\u202f000."
            )
        finally:
            await service.stop()


async def test_german_admins_invoice_refusals_are_german(start: Start) -> None:  # noqa: F811
    run = await start(SUPERADMINS=f"telegram:{MEMBER}")
    await tenant_with_tokens(run.app, "mueller")

    assert await _ask(run, "/invoice generate mueller --period 2020-01", "de") == (
        f"mueller wurde am {datetime.now(UTC).date().isoformat()} angelegt, nach 2020-01: "
        "Für diesen Monat gibt es nichts abzurechnen."
    )
    assert await _ask(run, "/invoice new mueller 99999999 Beratung --qty 20", "de") == (
        "Zeilenbetrag: 1.999.999.980,00 EUR. Eine Rechnungsposition oder -summe darf höchstens "
        "1.000.000.000,00 betragen. Bitte prüfen Sie Betrag und Menge."
    )

    await admin(run.app, "invoice", "new", "mueller", "100", "Beratung")
    number = (await admin(run.app, "invoice", "list", "mueller")).data[0]["number"]
    await admin(run.app, "invoice", "paid", number)
    assert await _ask(run, f"/invoice cancel {number}", "de") == (
        f"{number} ist bezahlt und kann nicht storniert werden."
    )
    assert await _ask(run, f"/invoice send {number}", "de") == (
        f"{number} ist bezahlt: Es gibt nichts zu versenden."
    )
    assert await _ask(run, f"/invoice line {number} 5 Reise", "de") == (
        f"{number} ist bezahlt: Positionen können nur einem Entwurf hinzugefügt werden. "
        "Stornieren Sie die Rechnung und stellen Sie stattdessen eine neue aus."
    )


async def test_pages_after_stripe_speak_the_browsers_language(
    make_app: AppFactory, stripe_api: FakeStripeServer
) -> None:
    app = await make_app(**stripe_env(stripe_api), DEFAULT_LANGUAGE="fr")
    service = ServiceRunner(app, channels=[])
    await service.start()
    base = f"http://127.0.0.1:{service.port}/paid"

    async def page(query: str, accept: str | None) -> tuple[str, str]:
        headers = {"Accept-Language": accept} if accept is not None else {}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{base}?{query}", headers=headers) as response,
        ):
            assert response.status == 200
            return await response.text(), response.headers["Content-Language"]

    try:
        german, language = await page("cancelled=1", "de-DE,de;q=0.9")
        assert '<html lang="de">' in german and language == "de"
        assert "<h1>Zahlung abgebrochen</h1>" in german
        assert "Es wurde nichts berechnet. Sie können zum Chat zurückkehren." in german

        # English asked for above French: English, as it always read.
        english, _ = await page("session_id=cs_x", "en-GB;q=0.8, fr;q=0.5")
        assert '<html lang="en">' in english and "<h1>Payment received</h1>" in english
        assert "it tells you as soon as the tokens are in." in english

        # A browser asking for none of en/fr/de, or nothing: DEFAULT_LANGUAGE (fr here).
        for accept in ("ja, es;q=0.8", None):
            french, language = await page("portal=1", accept)
            assert '<html lang="fr">' in french and language == "fr"
            assert "<h1>Paramètres de facturation enregistrés</h1>" in french
    finally:
        await service.stop()


async def test_slack_file_too_large_is_refused_in_the_organisations_language(
    make_app: AppFactory,
    slack: FakeSlackServer,  # noqa: F811
    llm: FakeLLMServer,
) -> None:
    app = await make_app(**slack_env(slack))
    code = await tenant_with_tokens(app)
    await admin(app, "tenant", "set", "acme", "--language", "fr")
    channel = build_slack_channel(
        app.settings, app.pipeline, app.registry, options=replace(FAST, max_download_bytes=16)
    )
    web_app = build_web_app(app.deps)
    channel.install_routes(web_app)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await channel.start()
    try:
        async with aiohttp.ClientSession() as http:
            h = Harness(app, slack, llm, channel, f"http://127.0.0.1:{port}/slack/events", http)
            await h.command(f"join {code}", name="join")
            content = b"Quarterly revenue grew 12 percent."
            url = slack.add_file("notes.txt", content, "text/plain")
            file = {
                "id": "F1",
                "name": "notes.txt",
                "mimetype": "text/plain",
                "size": len(content),
                "url_private_download": url,
            }
            ts = "1700000900.000900"
            await h.event(message_event("résume", ts=ts, subtype="file_share", files=[file]))
            [reply] = slack.thread("D0001", ts)
            assert reply.text == "Désolé, ce fichier est trop volumineux."
            assert llm.requests == []
    finally:
        await channel.stop()
        await runner.cleanup()


async def test_a_french_terminal_says_where_a_file_was_saved_in_french(
    app: App, llm: FakeLLMServer
) -> None:
    await tenant_with_tokens(app, "acme")
    await admin(app, "admin", "add", "console:console", "viewer")
    env = {
        "DATABASE_URL": app.settings.database_url,
        "MEDIA_DIR": str(app.settings.media_dir),
        "OPENAI_BASE_URL": llm.base_url,
        "DEFAULT_LANGUAGE": "fr",
    }
    out = io.StringIO()
    words = ["chat", "--tenant", "acme"]
    code = await asyncio.to_thread(
        main, words, environ=env, stdin=io.StringIO("/export usage\n"), stdout=out
    )
    saved = app.settings.media_dir / "usage-all-all.csv"
    assert code == 0 and out.getvalue() == f"[fichier enregistré : {saved}]\n"
    assert saved.stat().st_size > 0
