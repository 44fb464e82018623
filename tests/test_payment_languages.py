"""``/buy`` and ``/invoices`` in the member's language (DESIGN §9): a French Telegram app gets
its pack list and payment link in French, and a German organisation's member its invoices in
German, through the fake Bot API and the fake Stripe."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import admin, tenant_with_tokens
from tests.fakes.stripe_server import FakeStripeServer
from tests.fakes.telegram_server import FakeTelegramServer
from tests.test_payments import stripe_env
from tests.test_telegram import Running, Start, start, telegram  # noqa: F401 (fixtures)

MEMBER = 550055


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripeServer]:
    async with FakeStripeServer() as server:
        yield server


async def _ask(run: Running, text: str, language: str | None) -> str:
    """``text`` from a Telegram app set to ``language`` (None: the app says none)."""
    update = run.fake.private_message(MEMBER, text, first_name="Amélie")
    sender: dict[str, Any] = update["message"]["from"]
    sender.pop("language_code", None)
    if language:
        sender["language_code"] = language
    before = len(run.fake.chat_messages(MEMBER))  # a PDF counts too
    await run.fake.send_update(update)
    await run.fake.wait_for_bot_messages(MEMBER, before + 1)
    return run.fake.bot_texts(MEMBER)[-1]


async def _settled(fake: FakeTelegramServer) -> None:
    """Until nothing more reaches the member's chat for half a second (at most 10 s)."""
    seen, quiet = -1, 0
    for _ in range(100):
        count = len(fake.chat_messages(MEMBER))
        quiet = quiet + 1 if count == seen else 0
        if quiet >= 5 and count > 0:
            return
        seen = count
        await asyncio.sleep(0.1)


def _buttons(fake: FakeTelegramServer) -> list[str]:
    params = fake.calls_to("sendMessage", chat_id=MEMBER)[-1].params
    markup = params.get("reply_markup") or {}
    if isinstance(markup, str):
        markup = json.loads(markup)
    return [row[0]["text"] for row in markup.get("inline_keyboard", [])]


async def test_french_member_buys_in_french(
    start: Start,  # noqa: F811
    stripe_api: FakeStripeServer,
) -> None:
    run = await start(**stripe_env(stripe_api))
    code = await tenant_with_tokens(run.app, "dupont")
    await admin(run.app, "tenant", "set", "dupont", "--name", "Dupont SARL")
    await _ask(run, f"/start {code}", "fr")

    listing = await _ask(run, "/buy", "fr")
    assert listing.startswith("Rechargez Dupont SARL (solde : 100\u202f000 jetons) :\n• ")
    assert "jetons pour" in listing and "tokens" not in listing

    one = await _ask(run, "/buy pro", "fr")
    assert one.startswith("Pro : 2\u202f000\u202f000 jetons pour 15,00 EUR. Payez avec le lien")
    assert _buttons(run.fake) == ["Payer 15,00 EUR"]

    wrong = await _ask(run, "/buy nothing", "fr")
    assert wrong.startswith("Aucun pack « nothing » en vente. Packs : ")

    # /usage lists the links made among the recent payments, in French too.
    usage = await _ask(run, "/usage", "fr")
    [line] = [x for x in usage.splitlines() if x.startswith("#") and " pack pro " in x]
    assert line.endswith("pack pro 2\u202f000\u202f000 jetons 15,00 EUR en attente"), line
    assert "tokens" not in line and "pending" not in line


async def test_german_organisations_member_reads_invoices_in_german(
    start: Start,  # noqa: F811
    stripe_api: FakeStripeServer,
) -> None:
    run = await start(**stripe_env(stripe_api))
    code = await tenant_with_tokens(run.app, "mueller")
    await admin(run.app, "tenant", "set", "mueller", "--language", "de")
    await _ask(run, f"/start {code}", None)
    assert await _ask(run, "/invoices", None) == "Noch keine Rechnungen."

    await admin(run.app, "invoice", "new", "mueller", "1234.50", "Beratung")
    listing = await _ask(run, "/invoices", None)
    assert listing == "Noch keine Rechnungen."  # a draft is not the member's yet
    created = await admin(run.app, "invoice", "list", "mueller")
    number = created.data[0]["number"]
    await admin(run.app, "invoice", "send", number)
    await _settled(run.fake)  # the invoice reaches the chat first (its PDF, its message)
    assert any(t.startswith(f"Rechnung {number} ") for t in run.fake.bot_texts(MEMBER))

    listing = await _ask(run, "/invoices", None)
    assert listing.startswith(f"{number} mueller versendet 1.481,40 EUR fällig am ")
    assert _buttons(run.fake) == [f"{number} bezahlen: 1.481,40 EUR"]

    await admin(run.app, "invoice", "paid", number)
    listing = await _ask(run, "/invoices", None)
    assert listing.startswith(f"{number} mueller bezahlt 1.481,40 EUR bezahlt am ")
    assert _buttons(run.fake) == []
