"""Messages members and admins receive outside a command's reply, in their language (DESIGN §9):
the assistant turn's refusals, a payment notice written by a Stripe webhook, the daily alert
push. Driven through the fake Bot API, the fake LLM and the fake Stripe (signed webhooks)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from storage.models import Tenant
from tests.conftest import admin, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.stripe_server import FakeStripeServer
from tests.fakes.telegram_server import FakeTelegramServer
from tests.test_alerts import Clock
from tests.test_payments import stripe_env
from tests.test_telegram import Running, Start, start, telegram  # noqa: F401 (fixtures)

AMELIE, KLAUS, ADA = 710071, 720072, 730073


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripeServer]:
    async with FakeStripeServer() as server:
        yield server


async def _send(
    run: Running, user: int, text: str | None, language: str | None, **media: Any
) -> str:
    """``text`` (or media) from a Telegram app set to ``language``; the bot's last text."""
    update = run.fake.private_message(user, text, **media)
    sender: dict[str, Any] = update["message"]["from"]
    sender.pop("language_code", None)
    if language:
        sender["language_code"] = language
    before = len(run.fake.bot_texts(user))
    await run.fake.send_update(update)
    await run.fake.wait_for_bot_messages(user, before + 1)
    return run.fake.bot_texts(user)[-1]


async def _texts_until(fake: FakeTelegramServer, user: int, pattern: str) -> list[str]:
    """The bot's texts to ``user`` once one matches ``pattern`` (at most 10 s)."""
    for _ in range(200):
        texts = fake.bot_texts(user)
        if any(re.search(pattern, t) for t in texts):
            return texts
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing matching {pattern!r} reached {user}: {fake.bot_texts(user)}")


def _button_url(fake: FakeTelegramServer, user: int) -> str:
    markup = fake.calls_to("sendMessage", chat_id=user)[-1].params.get("reply_markup") or {}
    if isinstance(markup, str):
        markup = json.loads(markup)
    return str(markup["inline_keyboard"][0][0]["url"])


async def test_a_french_member_is_refused_in_french(
    start: Start,  # noqa: F811
    llm: FakeLLMServer,
) -> None:
    run = await start()
    empty = await tenant_with_tokens(run.app, "dupont", tokens=0)
    await _send(run, AMELIE, f"/start {empty}", "fr")

    refusal = await _send(run, AMELIE, "Bonjour, pouvez-vous m'aider ?", "fr")
    assert refusal == (
        "Votre solde de jetons est épuisé. Demandez à votre administrateur de le recharger, "
        "ou achetez un pack avec /buy."
    )
    assert llm.requests == [], "refused before any provider call"

    # A file the assistant cannot take, and a provider failure, are told in French too.
    funded = await tenant_with_tokens(run.app, "martin")
    await _send(run, KLAUS, f"/start {funded}", "fr")
    pdf = ("devis.pdf", "application/pdf", b"%PDF-1.4")
    unsupported = await _send(run, KLAUS, None, "fr", document=pdf)
    assert unsupported == (
        "Désolé, ce type de fichier n'est pas pris en charge. Envoyez du texte, une photo, "
        "un message vocal ou un document texte."
    )
    llm.fail_next(500)
    failed = await _send(run, KLAUS, "Bonjour", "fr")
    assert failed == (
        "L'assistant ne peut pas répondre pour le moment. Veuillez réessayer dans un instant."
    )

    # English stays as it always read.
    english = await _send(run, KLAUS, None, "en", document=pdf)
    assert english == (
        "Sorry, this kind of file is not supported. "
        "Send text, a photo, a voice message or a text document."
    )


async def test_a_stripe_payment_notice_to_a_german_organisation_is_german(
    start: Start,  # noqa: F811
    stripe_api: FakeStripeServer,
) -> None:
    run = await start(**stripe_env(stripe_api))
    stripe_api.webhook_urls.append(f"{run.url}/stripe/webhook")
    code = await tenant_with_tokens(run.app, "mueller")
    await admin(run.app, "tenant", "set", "mueller", "--language", "de")
    await _send(run, KLAUS, f"/start {code}", None)  # the app says no language: the tenant's

    answer = await _send(run, KLAUS, "/subscription", None)
    assert answer == "Mueller hat kein Abonnement. /subscribe PLAN schließt eines ab."

    await _send(run, KLAUS, "/buy pro", None)
    session = stripe_api.session_for_url(_button_url(run.fake, KLAUS))
    assert await stripe_api.pay(session["id"]) == [200]

    texts = await _texts_until(run.fake, KLAUS, "^Zahlung erhalten")
    [notice] = [t for t in texts if t.startswith("Zahlung erhalten")]
    assert re.fullmatch(
        r"Zahlung erhalten: \+2\.000\.000 Token, Guthaben 2\.100\.000\. Quittung \S+\.", notice
    ), notice
    assert not any("Payment received" in t for t in texts)


async def test_the_daily_alert_push_is_in_each_admins_language(
    start: Start,  # noqa: F811
) -> None:
    day = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)
    clock = Clock(day)
    run = await start(
        clock=clock,
        ALERTS_HOUR="8",
        SUPERADMINS=f"telegram:{KLAUS},telegram:{AMELIE},telegram:{ADA}",
    )
    # Klaus chose German; Amélie's organisation is French; Ada belongs to none (the default).
    code = await tenant_with_tokens(run.app, "mueller")
    await _send(run, KLAUS, f"/start {code}", None)
    await _send(run, KLAUS, "/language de", None)
    code = await tenant_with_tokens(run.app, "dupont")
    await admin(run.app, "tenant", "set", "dupont", "--language", "fr")
    await _send(run, AMELIE, f"/start {code}", None)
    assert (await _send(run, AMELIE, "/language", None)).startswith("Les réponses sont en ")
    await tenant_with_tokens(run.app, "acme", tokens=0)
    async with run.app.deps.sessions.begin() as session:
        await session.execute(
            update(Tenant)
            .where(Tenant.slug == "acme")
            .values(
                trial_ends_at=day - timedelta(days=1),
                last_activity_at=day - timedelta(days=1),
                created_at=day - timedelta(days=2),
            )
        )

    pushed = await run.service.alerts.push_due()
    assert pushed is not None and [a.tenant for a in pushed] == ["acme"]
    await run.app.deps.outbox.drain(10)

    german = await _texts_until(run.fake, KLAUS, "^Switchboard-Warnungen")
    assert german[-1].startswith(
        "Switchboard-Warnungen vom 22. November 2026 (neu: 1):\n• Testphase · acme: "
    ), german[-1]
    french = await _texts_until(run.fake, AMELIE, "^Alertes Switchboard")
    assert french[-1].startswith(
        "Alertes Switchboard du 22 novembre 2026 (nouvelles : 1) :\n• Période d'essai · acme : "
    ), french[-1]
    english = await _texts_until(run.fake, ADA, "^Switchboard alerts")
    assert english[-1] == (
        "Switchboard alerts, 2026-11-22 (1 new):\n• Trial · acme: trial ended on 2026-11-21"
    )


async def test_an_empty_answer_is_said_in_the_readers_language(
    start: Start,  # noqa: F811
    llm: FakeLLMServer,
) -> None:
    """A model that streams nothing: the chat is told so in the member's language (the turn
    passes the sentence; the sink no longer falls back to English for it)."""
    run = await start()
    await _send(run, AMELIE, f"/start {await tenant_with_tokens(run.app, 'dupont')}", "fr")
    await _send(run, KLAUS, f"/start {await tenant_with_tokens(run.app, 'mueller')}", "de")
    llm.reply_text = ""

    assert await _send(run, AMELIE, "Bonjour", "fr") == "L'assistant a renvoyé une réponse vide."
    assert (
        await _send(run, KLAUS, "Hallo", "de") == "Der Assistent hat eine leere Antwort geliefert."
    )
    assert await _send(run, AMELIE, "Hello", "en") == "The assistant returned an empty answer."
