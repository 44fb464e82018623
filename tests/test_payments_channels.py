"""Payment links as buttons in Telegram and Slack, and the chats told when payments land: the
real channel adapters run by ``bot.service`` against the fake Bot API, Slack and Stripe."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.channels import build_channels
from bot.service import ServiceRunner
from tests.conftest import AppFactory, admin, tenant_with_tokens
from tests.fakes.slack_server import (
    FakeSlackServer,
    command_body,
    event_callback,
    mention_event,
    signed_headers,
)
from tests.fakes.stripe_server import FakeStripeServer
from tests.fakes.telegram_server import FakeTelegramServer
from tests.test_payments import START, stripe_env

USER = 424242
ADMIN = 111000
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripeServer]:
    async with FakeStripeServer() as server:
        yield server


async def _serve(make_app: AppFactory, stripe: FakeStripeServer, **env: str) -> ServiceRunner:
    app = await make_app(**stripe_env(stripe, **env))
    service = ServiceRunner(app, build_channels(app.settings, app.deps, app.pipeline, app.registry))
    await service.start()
    stripe.webhook_urls.append(f"http://127.0.0.1:{service.port}/stripe/webhook")
    return service


def _keyboard(fake: FakeTelegramServer, chat_id: int) -> list[dict[str, Any]]:
    """The URL buttons of the last message sent to ``chat_id``."""
    params = fake.calls_to("sendMessage", chat_id=chat_id)[-1].params
    markup = params.get("reply_markup") or {}
    if isinstance(markup, str):
        markup = json.loads(markup)
    return [row[0] for row in markup.get("inline_keyboard", [])]


async def test_telegram_buy_button_payment_and_failed_renewal_notices(
    make_app: AppFactory, stripe_api: FakeStripeServer
) -> None:
    async with FakeTelegramServer() as fake:
        service = await _serve(
            make_app,
            stripe_api,
            TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_API_BASE=fake.base_url,
            SUPERADMINS=f"telegram:{ADMIN}",
            ALERTS_HOUR="0",
        )
        try:
            code = await tenant_with_tokens(service.app, tokens=START)
            await fake.send_update(fake.private_message(USER, f"/start {code}"))
            await fake.wait_for_bot_messages(USER)

            await fake.send_update(fake.private_message(USER, "/buy pro"))
            await fake.wait_for_bot_messages(USER, 2)
            [button] = _keyboard(fake, USER)
            session = stripe_api.session_for_url(button["url"])
            assert button["text"] == "Pay 15.00 EUR"
            assert fake.bot_texts(USER)[-1].startswith("Pro: 2,000,000 tokens for 15.00 EUR.")

            assert await stripe_api.pay(session["id"]) == [200]
            # The receipt's PDF, then the payment notice.
            receipt = (await fake.wait_for_bot_messages(USER, 4))[-2]
            assert receipt.document and re.fullmatch(
                r"INV-\d{4}-0001\.pdf", receipt.document["file_name"]
            )
            assert re.fullmatch(
                r"Payment received: \+2,000,000 tokens, balance 2,100,000\. "
                r"Receipt INV-\d{4}-0001\.",
                fake.bot_texts(USER)[-1],
            )

            await fake.send_update(fake.private_message(USER, "/subscribe pro"))
            await fake.wait_for_bot_messages(USER, 5)
            [button] = _keyboard(fake, USER)
            subscribed = stripe_api.session_for_url(button["url"])
            assert await stripe_api.pay(subscribed["id"]) == [200, 200]
            receipt = (await fake.wait_for_bot_messages(USER, 7))[-2]
            assert receipt.document and re.fullmatch(
                r"INV-\d{4}-0002\.pdf", receipt.document["file_name"]
            )
            assert re.fullmatch(
                r"Payment received: Pro plan, \+5,000,000 tokens, balance 7,100,000\. "
                r"Receipt INV-\d{4}-0002\.",
                fake.bot_texts(USER)[-1],
            )

            subscription = stripe_api.sessions[subscribed["id"]].data["subscription"]
            assert await stripe_api.deliver(stripe_api.invoice_failed(subscription)) == [200]
            await fake.wait_for_bot_messages(USER, 8)
            await fake.wait_for_bot_messages(ADMIN, 1)
            assert fake.bot_texts(USER)[-1].startswith(
                "The payment of 29.00 EUR for your Pro plan failed."
            )
            assert fake.bot_texts(ADMIN)[-1].startswith(
                "Payment failed: acme's Pro plan, 29.00 EUR"
            )
            # Told at once, so the daily push does not tell it again; /alerts still lists it.
            [listed] = (await admin(service.app, "alerts")).data
            assert listed["detail"].startswith("payment failed: acme's Pro plan")
            daily = ServiceRunner(service.app, [])
            assert await daily.alerts.push_due() == []
            assert len(fake.bot_texts(ADMIN)) == 1
        finally:
            await service.stop()


async def test_telegram_out_of_tokens_refusal_has_a_button_per_pack(
    make_app: AppFactory, stripe_api: FakeStripeServer
) -> None:
    async with FakeTelegramServer() as fake:
        service = await _serve(
            make_app, stripe_api, TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_BASE=fake.base_url
        )
        try:
            code = await tenant_with_tokens(service.app, tokens=0)
            await fake.send_update(fake.private_message(USER, f"/start {code}"))
            await fake.wait_for_bot_messages(USER)
            await fake.send_update(fake.private_message(USER, "write me a poem"))
            await fake.wait_for_bot_messages(USER, 2)
            assert fake.bot_texts(USER)[-1].startswith("Your token balance is used up.")
            buttons = _keyboard(fake, USER)
            assert [b["text"] for b in buttons] == [
                "Starter: 500,000 tokens for 5.00 EUR",
                "Pro: 2,000,000 tokens for 15.00 EUR",
                "Enterprise: 10,000,000 tokens for 50.00 EUR",
            ]
            assert all(stripe_api.session_for_url(b["url"]) for b in buttons)
        finally:
            await service.stop()


async def test_slack_buy_buttons_ephemeral_in_channels_and_notices_in_direct_messages(
    make_app: AppFactory, stripe_api: FakeStripeServer
) -> None:
    slack = FakeSlackServer()
    await slack.start()
    service = await _serve(
        make_app,
        stripe_api,
        SLACK_BOT_TOKEN=slack.token,
        SLACK_SIGNING_SECRET=SLACK_SECRET,
        SLACK_API_BASE=slack.api_base,
    )
    [channel] = service.channels
    url = f"http://127.0.0.1:{service.port}/slack/events"
    form = "application/x-www-form-urlencoded"
    try:
        code = await tenant_with_tokens(service.app, tokens=START)
        async with aiohttp.ClientSession() as http:
            for text, name in ((f"join {code}", "join"), ("buy pro", "buy")):
                body = command_body(text, response_url=slack.response_url(name))
                headers = signed_headers(SLACK_SECRET, body, content_type=form)
                async with http.post(url, data=body, headers=headers) as resp:
                    assert resp.status == 200
                await channel.drain(30)
            [answer] = [r for r in slack.responses if r["url_name"] == "buy"]
            assert answer["response_type"] == "ephemeral"
            [button] = answer["blocks"][1]["elements"]
            session = stripe_api.session_for_url(button["url"])
            assert button["type"] == "button" and button["text"]["text"] == "Pay 15.00 EUR"
            assert session["url"] in answer["text"]  # the fallback text carries the link too

            mention = json.dumps(event_callback(mention_event("/buy starter", channel="C0001")))
            async with http.post(
                url, data=mention, headers=signed_headers(SLACK_SECRET, mention)
            ) as resp:
                assert resp.status == 200
            await channel.drain(30)
        [ephemeral] = slack.calls_to("chat.postEphemeral", ok_only=True)
        assert (ephemeral.args["channel"], ephemeral.args["user"]) == ("C0001", "U0001")
        [starter] = ephemeral.args["blocks"][1]["elements"]
        starter_session = stripe_api.session_for_url(starter["url"])

        assert await stripe_api.pay(session["id"]) == [200]
        assert await stripe_api.pay(starter_session["id"]) == [200]
        await service.app.deps.outbox.drain(10)
        told: dict[str, list[str]] = {}
        for m in slack.messages:
            told.setdefault(m.channel, []).append(m.text)
        # Asked in the direct message: told there. Asked in #general: told privately. (Each
        # also gets the other sale's receipt, as every chat of the tenant does.)
        [pro] = [t for t in told["D0001"] if t.startswith("Payment received")]
        assert re.fullmatch(
            r"Payment received: \+2,000,000 tokens, balance 2,100,000\. Receipt INV-\d{4}-0001\.",
            pro,
        )
        [starter] = [t for t in told["U0001"] if t.startswith("Payment received")]
        assert re.fullmatch(
            r"Payment received: \+500,000 tokens, balance 2,600,000\. Receipt INV-\d{4}-0002\.",
            starter,
        )
        assert not any(m.channel == "C0001" for m in slack.messages)
    finally:
        await service.stop()
        await slack.stop()
