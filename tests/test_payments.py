"""Payments end to end in one process: the real SDK talking HTTP to a fake Stripe
(tests/fakes/stripe_server.py), and signed webhooks POSTed to our running HTTP server."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.app import App, prepare_database
from bot.service import ServiceRunner
from storage.models import Alert, AuditLog, LedgerEntry, Payment, StripeEffect, Subscription
from tests.conftest import AppFactory, admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.stripe_server import FakeStripeServer

PUBLIC_URL = "https://switchboard.example.test"
START = 100_000  # tokens every test tenant starts with


@dataclass
class Shop:
    """A running service (HTTP server up) with Stripe configured against the fake."""

    app: App
    stripe: FakeStripeServer
    service: ServiceRunner
    webhook_url: str

    async def buy(self, pack: str = "pro", slug: str = "acme") -> dict[str, Any]:
        result = await admin(self.app, "buy", pack, "--tenant", slug)
        return dict(result.data)

    async def balance(self, slug: str = "acme") -> int:
        return int((await admin(self.app, "tenant", "show", slug)).data["token_balance"])

    async def payment(self, session_id: str) -> Payment:
        async with self.app.deps.sessions() as session:
            query = select(Payment).where(Payment.stripe_session_id == session_id)
            return (await session.execute(query)).scalar_one()

    async def ledger_ok(self) -> bool:
        return bool((await admin(self.app, "ledger", "verify")).data["ok"])


ShopFactory = Callable[..., Awaitable[Shop]]


def stripe_env(stripe: FakeStripeServer, **extra: str) -> dict[str, str]:
    return {
        "STRIPE_SECRET_KEY": stripe.api_key,
        "STRIPE_WEBHOOK_SECRET": stripe.webhook_secret,
        "STRIPE_API_BASE": stripe.base_url,
        "PUBLIC_BASE_URL": PUBLIC_URL,
        "STRIPE_TIMEOUT_SECONDS": "2",
        "HTTP_PORT": "0",
        **extra,
    }


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripeServer]:
    async with FakeStripeServer() as server:
        yield server


@pytest.fixture
async def open_shop(
    make_app: AppFactory, stripe_api: FakeStripeServer
) -> AsyncIterator[ShopFactory]:
    """``await open_shop(**env)``: a service whose /stripe/webhook the fake delivers to."""
    services: list[ServiceRunner] = []

    async def factory(**env: str) -> Shop:
        app = await make_app(**stripe_env(stripe_api, **env))
        service = ServiceRunner(app, channels=[])
        await service.start()
        services.append(service)
        url = f"http://127.0.0.1:{service.port}/stripe/webhook"
        stripe_api.webhook_urls.append(url)
        return Shop(app, stripe_api, service, url)

    yield factory
    for service in services:
        await service.stop()


@pytest.fixture
async def shop(open_shop: ShopFactory) -> Shop:
    shop = await open_shop()
    await tenant_with_tokens(shop.app, tokens=START)
    return shop


async def count(app: App, model: type[Any], *where: Any) -> int:
    async with app.deps.sessions() as session:
        query = select(func.count()).select_from(model).where(*where)
        return int((await session.execute(query)).scalar_one())


# -- packs and plans ------------------------------------------------------------------------------


async def test_packs_and_plans_are_seeded_once_and_listed(app: App) -> None:
    packs = (await admin(app, "pack", "list")).data
    assert packs == [
        {"slug": "starter", "name": "Starter", "tokens": 500_000, "price": "5.00",
         "currency": "EUR", "active": True, "stars": None},
        {"slug": "pro", "name": "Pro", "tokens": 2_000_000, "price": "15.00",
         "currency": "EUR", "active": True, "stars": None},
        {"slug": "enterprise", "name": "Enterprise", "tokens": 10_000_000, "price": "50.00",
         "currency": "EUR", "active": True, "stars": None},
    ]  # fmt: skip
    plans = {p["slug"]: p for p in (await admin(app, "plan", "list")).data}
    assert set(plans) == {"prepaid", "postpaid", "starter", "pro", "enterprise"}
    assert plans["pro"]["kind"] == "subscription" and plans["pro"]["tokens_included"] > 0
    assert {"slug", "name", "price", "currency", "tokens_included", "markup", "base_fee"} <= set(
        plans["postpaid"]
    )

    # An operator's change survives the next start's seeding.
    changed = await admin(app, "pack", "set", "pro", "--price", "16.50", "--name", "Pro plus")
    assert changed.data["price"] == "16.50"
    await prepare_database(app)
    pro = next(p for p in (await admin(app, "pack", "list")).data if p["slug"] == "pro")
    assert (pro["price"], pro["name"]) == ("16.50", "Pro plus")
    async with app.deps.sessions() as session:
        from storage.models import AuditLog

        entry = (
            await session.execute(select(AuditLog).where(AuditLog.action == "pack.set"))
        ).scalar_one()
    assert entry.before is not None and entry.before["price"] == "15.00"
    assert entry.after is not None and entry.after["price"] == "16.50"


BAD_CATALOG_INPUT = [
    (["pack", "set", "pro", "--price", "abc"], "is not an amount"),
    (["pack", "set", "pro", "--price", "5.005"], "decimal places"),
    (["pack", "set", "pro", "--price", "0"], "above zero"),
    (["pack", "set", "pro"], "Nothing to change"),
    (["pack", "set", "mega", "--price", "9"], "needs --tokens and --price"),
    (["pack", "set", "pro", "--active", "maybe"], "is not yes or no"),
    (["pack", "set", "pro", "--currency", "euro"], "is not a currency code"),
    (["plan", "set", "prepaid", "--price", "5"], "no monthly price"),
    (["plan", "set", "prepaid", "--active", "no"], "stays on"),
    (["plan", "set", "much-too-long-plan", "--price", "5"], "2-16 lowercase"),
    (["plan", "set", "team", "--price", "5"], "--tokens-included"),
    (["plan", "set", "pro", "--markup", "0"], "above zero"),
    (["tenant", "plan", "acme", "gold"], "Plans: prepaid, postpaid, starter, pro"),
    (["tenant", "quota", "acme", "-5"], "must be from 1 to"),
]


async def test_bad_catalog_input_is_refused_and_changes_nothing(app: App) -> None:
    from core.errors import UsageError

    await tenant_with_tokens(app)
    packs, plans = (await admin(app, "pack", "list")).data, (await admin(app, "plan", "list")).data
    for words, problem in BAD_CATALOG_INPUT:
        with pytest.raises(UsageError) as refused:
            await admin(app, *words)
        message = refused.value.user_message
        assert problem in message and "Usage: /" in message, (words, message)
    assert (await admin(app, "pack", "list")).data == packs
    assert (await admin(app, "plan", "list")).data == plans
    shown = (await admin(app, "tenant", "show", "acme")).data
    assert (shown["plan"], shown["monthly_token_quota"]) == ("prepaid", None)


async def test_new_packs_plans_tenant_plan_and_quota(app: App) -> None:
    await tenant_with_tokens(app)
    made = await admin(app, "pack", "set", "mega", "--tokens", "50,000,000", "--price", "200")
    assert made.data == {
        "slug": "mega", "name": "Mega", "tokens": 50_000_000, "price": "200.00",
        "currency": "EUR", "active": True, "stars": None,
    }  # fmt: skip
    await admin(app, "pack", "set", "starter", "--active", "no")
    assert "(not on sale)" in (await admin(app, "pack", "list")).text
    team = await admin(app, "plan", "set", "team", "--price", "49", "--tokens-included", "8000000")
    assert (team.data["kind"], team.data["price"]) == ("subscription", "49.00")

    moved = await admin(app, "tenant", "plan", "acme", "postpaid")
    assert moved.data == {"slug": "acme", "plan": "postpaid", "previous": "prepaid"}
    quota = await admin(app, "tenant", "quota", "acme", "1,000,000")
    assert quota.data["monthly_token_quota"] == 1_000_000
    assert (await admin(app, "tenant", "show", "acme")).data["monthly_token_quota"] == 1_000_000
    cleared = await admin(app, "tenant", "quota", "acme", "none")
    assert cleared.data["monthly_token_quota"] is None

    from storage.models import AuditLog

    async with app.deps.sessions() as session:
        actions = set((await session.execute(select(AuditLog.action))).scalars())
    assert {"pack.set", "plan.set", "tenant.plan", "tenant.quota"} <= actions


async def test_pricing_commands_need_the_admin_role(app: App) -> None:
    from admin_commands.registry import Caller
    from core.errors import PermissionDenied

    viewer = Caller(channel="telegram", user_id="7", role="viewer")
    assert (await admin(app, "pack", "list", caller=viewer)).data
    assert (await admin(app, "payments", caller=viewer)).data == []
    with pytest.raises(PermissionDenied) as refused:
        await admin(app, "pack", "set", "pro", "--price", "1", caller=viewer)
    assert "admin role" in refused.value.user_message


# -- buying a pack --------------------------------------------------------------------------------


async def test_buy_links_then_paying_adds_the_pack_exactly_once(shop: Shop) -> None:
    app, stripe = shop.app, shop.stripe
    await bind_console(app)
    sink = await say(app, "/buy")
    assert [b.label for b in sink.buttons] == [
        "Starter: 500,000 tokens for 5.00 EUR",
        "Pro: 2,000,000 tokens for 15.00 EUR",
        "Enterprise: 10,000,000 tokens for 50.00 EUR",
    ]
    assert len(stripe.created()) == 3

    sink = await say(app, "/buy pro")
    [button] = sink.buttons
    session = stripe.session_for_url(button.url)
    # The chat's open pro link is given again: no second session for the same thing.
    assert len(stripe.created()) == 3
    [request] = [r for r in stripe.created() if r.params["metadata"]["pack"] == "pro"]
    assert request.params["mode"] == "payment"
    assert request.params["client_reference_id"] == "acme"
    assert request.params["metadata"] | {"payment": "?"} == {
        "tenant": "acme", "pack": "pro", "tokens": "2000000", "payment": "?",
    }  # fmt: skip
    price = request.params["line_items"][0]["price_data"]
    assert (price["currency"], price["unit_amount"]) == ("eur", "1500")
    assert request.params["success_url"].startswith(f"{PUBLIC_URL}/paid")
    payment = await shop.payment(session["id"])
    assert payment.status == "pending" and payment.tokens == 2_000_000
    assert request.idempotency_key == payment.idempotency_key
    assert f"payment-{payment.id}-" in payment.idempotency_key

    assert await stripe.pay(session["id"]) == [200]
    assert await shop.balance() == START + 2_000_000
    event = stripe.completed(session["id"])
    for _ in range(3):  # Stripe redelivers; each redelivery is answered 200 and changes nothing
        assert await stripe.deliver(event) == [200]
    assert await shop.balance() == START + 2_000_000
    assert (await shop.payment(session["id"])).status == "paid"
    assert await count(app, LedgerEntry, LedgerEntry.kind == "purchase") == 1
    assert await shop.ledger_ok()

    usage = await say(app, "/usage")
    assert "pro 2,000,000 tokens 15.00 EUR paid" in usage.texts[0]
    listed = (await admin(app, "payments", "acme", "--status", "paid")).data
    assert [(p["item"], p["amount"], p["session_id"]) for p in listed] == [
        ("pro", "15.00", session["id"])
    ]


async def test_buy_from_the_shell_prints_the_documented_json(shop: Shop) -> None:
    data = await shop.buy("enterprise")
    assert {"pack", "tokens", "amount", "currency", "url", "session_id"} <= set(data)
    assert (data["pack"], data["tokens"], data["amount"], data["currency"]) == (
        "enterprise", 10_000_000, "50.00", "EUR",
    )  # fmt: skip
    assert shop.stripe.session_for_url(data["url"])["id"] == data["session_id"]


async def test_switchboard_admin_buy_prints_json_or_the_link(
    shop: Shop, database_url: str, tmp_path: Path
) -> None:
    """The console script's own entry point (in a thread: it runs its own event loop)."""
    from bot.cli import main

    env = {"DATABASE_URL": database_url, "MEDIA_DIR": str(tmp_path / "media")}
    env |= stripe_env(shop.stripe)
    out = io.StringIO()
    argv = ["--log-level", "WARNING", "admin", "--json", "buy", "pro", "--tenant", "acme"]
    assert await asyncio.to_thread(main, argv, environ=env, stdout=out) == 0
    printed = json.loads(out.getvalue())
    assert {k: printed[k] for k in ("pack", "tokens", "amount", "currency")} == {
        "pack": "pro", "tokens": 2_000_000, "amount": "15.00", "currency": "EUR",
    }  # fmt: skip
    assert shop.stripe.session_for_url(printed["url"])["id"] == printed["session_id"]

    out = io.StringIO()
    argv = ["--log-level", "WARNING", "admin", "buy", "starter", "--tenant", "acme"]
    assert await asyncio.to_thread(main, argv, environ=env, stdout=out) == 0
    assert "  Pay 5.00 EUR: https://checkout.stripe.com/c/pay/cs_test_" in out.getvalue()


async def test_unknown_pack_or_postpaid_tenant_get_a_clear_answer(shop: Shop) -> None:
    await bind_console(shop.app)
    unknown = await say(shop.app, "/buy gold")
    assert "No pack 'gold' on sale. Packs: starter, pro, enterprise." in unknown.texts[0]
    await admin(shop.app, "tenant", "plan", "acme", "postpaid")
    postpaid = await say(shop.app, "/buy pro")
    assert "postpaid plan" in postpaid.texts[0] and not postpaid.buttons
    assert shop.stripe.created() == []


async def test_the_same_event_reaching_two_processes_at_once_credits_once(
    open_shop: ShopFactory,
) -> None:
    first = await open_shop()
    second = await open_shop()
    await tenant_with_tokens(first.app, tokens=START)
    session_id = (await first.buy())["session_id"]
    event = first.stripe.completed(session_id)
    statuses = await first.stripe.deliver(event, urls=[first.webhook_url, second.webhook_url])
    assert statuses == [200, 200]
    statuses = await first.stripe.deliver(event, urls=[second.webhook_url, first.webhook_url])
    assert statuses == [200, 200]
    assert await second.balance() == START + 2_000_000
    assert await count(first.app, StripeEffect) == 1
    assert await first.ledger_ok()


async def test_async_payment_credited_once_whatever_the_order(shop: Shop) -> None:
    stripe = shop.stripe
    in_order = (await shop.buy())["session_id"]
    assert await stripe.deliver(stripe.completed(in_order, paid=False)) == [200]
    assert await shop.balance() == START  # the bank debit is still on its way
    assert await stripe.deliver(stripe.async_succeeded(in_order)) == [200]
    assert await shop.balance() == START + 2_000_000

    reversed_ = (await shop.buy("starter"))["session_id"]
    unpaid = stripe.completed(reversed_, paid=False)
    succeeded = stripe.async_succeeded(reversed_)
    assert await stripe.deliver(succeeded) == [200]
    assert await stripe.deliver(unpaid) == [200]  # late, and says "unpaid": changes nothing
    assert await stripe.deliver(succeeded) == [200]
    assert await shop.balance() == START + 2_500_000
    assert (await shop.payment(reversed_)).status == "paid"

    failing = (await shop.buy("enterprise"))["session_id"]
    assert await stripe.deliver(stripe.completed(failing, paid=False)) == [200]
    assert await stripe.deliver(stripe.async_failed(failing)) == [200]
    assert await shop.balance() == START + 2_500_000
    assert (await shop.payment(failing)).status == "failed"

    expiring = (await shop.buy("starter"))["session_id"]
    assert await stripe.deliver(stripe.expired(expiring)) == [200]
    assert (await shop.payment(expiring)).status == "expired"
    assert await shop.ledger_ok()


async def test_forged_tampered_and_stale_signatures_get_400_and_change_nothing(
    shop: Shop,
) -> None:
    stripe = shop.stripe
    session_id = (await shop.buy())["session_id"]
    event = stripe.completed(session_id)
    assert await stripe.deliver(event, secret="whsec_forged") == [400]
    assert await stripe.deliver(event, tamper=True) == [400]
    assert await stripe.deliver(event, timestamp=int(time.time()) - 600) == [400]
    assert await stripe.deliver(event, signature="") == [400]
    assert await stripe.deliver(event, signature="t=1,v1=deadbeef") == [400]
    async with aiohttp.ClientSession() as http:
        body = "not json"
        headers = {"Stripe-Signature": stripe.sign(body)}
        async with http.post(shop.webhook_url, data=body, headers=headers) as resp:
            assert resp.status == 400
    assert await shop.balance() == START
    assert await count(shop.app, StripeEffect) == 0
    assert (await shop.payment(session_id)).status == "pending"
    assert await stripe.deliver(event) == [200]  # the genuine one still works
    assert await shop.balance() == START + 2_000_000


async def test_an_amount_that_differs_from_the_row_is_not_credited_and_alerted(
    shop: Shop,
) -> None:
    stripe = shop.stripe
    session_id = (await shop.buy())["session_id"]
    assert await stripe.deliver(stripe.completed(session_id, amount_total=1000)) == [200]
    other = (await shop.buy())["session_id"]
    assert await stripe.deliver(stripe.completed(other, currency="usd")) == [200]
    assert await shop.balance() == START
    payment = await shop.payment(session_id)
    assert payment.status == "failed"
    assert payment.error == "Stripe reported 10.00 EUR for pack pro, expected 15.00 EUR"
    async with shop.app.deps.sessions() as session:
        alerts = list((await session.execute(select(Alert).order_by(Alert.id))).scalars())
    assert [a.kind for a in alerts] == ["payment_mismatch", "payment_mismatch"]
    assert "NOT credited for acme" in alerts[0].detail and session_id in alerts[0].detail
    assert "15.00 USD" in alerts[1].detail
    assert await shop.ledger_ok()


async def test_unknown_events_and_sessions_not_ours_answer_200(shop: Shop) -> None:
    stripe = shop.stripe
    assert await stripe.deliver(stripe.event("customer.created", {"id": "cus_1"})) == [200]
    foreign = stripe.event(
        "checkout.session.completed",
        {"id": "cs_foreign", "payment_status": "paid", "amount_total": 100, "currency": "eur"},
    )
    assert await stripe.deliver(foreign) == [200]
    assert await shop.balance() == START


async def test_paid_page(shop: Shop) -> None:
    base = f"http://127.0.0.1:{shop.service.port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/paid?session_id=cs_x") as resp:
            assert resp.status == 200 and "go back to the chat" in await resp.text()
        async with http.get(f"{base}/paid?cancelled=1") as resp:
            assert "Nothing was charged" in await resp.text()


# -- Stripe failing -------------------------------------------------------------------------------


async def test_stripe_down_gives_a_clear_reply_a_failed_row_and_no_duplicate_on_retry(
    open_shop: ShopFactory,
) -> None:
    shop = await open_shop(STRIPE_TIMEOUT_SECONDS="0.5")
    await tenant_with_tokens(shop.app, tokens=START)
    app, stripe = shop.app, shop.stripe
    await bind_console(app)
    stripe.fail_next(500, count=3)  # the first try and both of the SDK's retries
    down = await say(app, "/buy pro")
    assert down.texts == [
        "The payment service is not responding right now. Please try again in a few minutes."
    ]
    assert not down.buttons and stripe.created() == []
    async with app.deps.sessions() as session:
        [failed] = (await session.execute(select(Payment))).scalars()
    assert (failed.status, failed.stripe_session_id) == ("failed", None)
    assert failed.error is not None and "APIError" in failed.error

    # The answer to the create call is lost: the SDK retries with the same key and gets the
    # session the first attempt made, not a second one.
    stripe.hang_next(1.5)
    sink = await say(app, "/buy pro")
    [button] = sink.buttons
    [made] = stripe.created()
    posts = [r for r in stripe.requests if r.path == "/v1/checkout/sessions"]
    assert len({r.idempotency_key for r in posts[-2:]}) == 1 and posts[-1].replayed
    assert len(stripe.sessions) == 1
    payment = await shop.payment(stripe.session_for_url(button.url)["id"])
    assert payment.status == "pending" and payment.idempotency_key == made.idempotency_key


async def test_a_refused_key_is_a_configuration_problem_never_a_traceback(
    open_shop: ShopFactory, caplog: pytest.LogCaptureFixture
) -> None:
    shop = await open_shop(STRIPE_SECRET_KEY="sk_test_wrong_key_0000")
    await tenant_with_tokens(shop.app)
    await bind_console(shop.app)
    sink = await say(shop.app, "/buy pro")
    assert sink.texts == [
        "Payments are not available right now because of a configuration problem. "
        "Please tell your administrator."
    ]
    assert "sk_test_wrong" not in caplog.text and "0000" not in caplog.text
    assert [r.status for r in shop.stripe.requests] == [401]


async def test_buy_without_stripe_says_payments_are_not_set_up(app: App) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    sink = await say(app, "/buy")
    assert sink.texts == [
        "Payments are not set up on this service yet. Please ask your administrator."
    ]


# -- refunds and the out-of-tokens refusal ------------------------------------------------------


async def test_refund_takes_the_tokens_back_and_an_overdrawn_tenant_gets_buy_links(
    shop: Shop, llm: FakeLLMServer
) -> None:
    app, stripe = shop.app, shop.stripe
    await tenant_with_tokens(app, "solo", tokens=0)
    await bind_console(app, "solo")
    session_id = (await shop.buy("starter", "solo"))["session_id"]
    await stripe.pay(session_id)
    assert await shop.balance("solo") == 500_000

    assert await stripe.deliver(stripe.refunded(session_id, amount=100)) == [200]  # 1.00 of 5.00
    assert await shop.balance("solo") == 400_000
    assert (await shop.payment(session_id)).status == "paid"

    answered = await say(app, "hello", slug="solo")  # some of the pack is used
    assert answered.texts == [llm.reply_text]
    spent = 400_000 - await shop.balance("solo")
    assert spent > 0
    event = stripe.refunded(session_id)  # the rest
    assert await stripe.deliver(event) == [200]
    assert await stripe.deliver(event) == [200]
    assert await shop.balance("solo") == -spent
    payment = await shop.payment(session_id)
    assert (payment.status, payment.refunded_tokens) == ("refunded", 500_000)
    assert await count(app, LedgerEntry, LedgerEntry.kind == "refund") == 2
    assert await shop.ledger_ok()

    calls = len(llm.requests)
    refused = await say(app, "hello?", slug="solo")
    assert refused.texts[0].startswith("Your token balance is used up.")
    assert [b.label.split(":")[0] for b in refused.buttons] == ["Starter", "Pro", "Enterprise"]
    assert len(llm.requests) == calls
    again = await say(app, "hello again?", slug="solo")
    assert [b.url for b in again.buttons] == [b.url for b in refused.buttons]
    assert len(shop.stripe.created()) == 1 + 3  # the refusal's links are reused, not remade


async def test_refusal_when_stripe_is_down_still_refuses_clearly(shop: Shop) -> None:
    app = shop.app
    await tenant_with_tokens(app, "solo", tokens=0)
    await bind_console(app, "solo")
    shop.stripe.fail_next(503, count=3)
    refused = await say(app, "hello", slug="solo")
    assert refused.texts == [
        "Your token balance is used up. Ask your administrator to top it up, or buy a pack "
        "with /buy.\nThe payment service is not responding right now. Please try again in a "
        "few minutes."
    ]


# -- subscriptions ------------------------------------------------------------------------------


async def test_subscription_start_renewals_failure_and_end(shop: Shop) -> None:
    app, stripe = shop.app, shop.stripe
    await bind_console(app)
    sink = await say(app, "/subscribe pro")
    [button] = sink.buttons
    session = stripe.session_for_url(button.url)
    request = stripe.created()[-1]
    assert request.params["mode"] == "subscription"
    assert request.params["line_items"][0]["price_data"]["recurring"] == {"interval": "month"}
    assert request.params["subscription_data"]["metadata"]["plan"] == "pro"
    included = next(p for p in (await admin(app, "plan", "list")).data if p["slug"] == "pro")[
        "tokens_included"
    ]

    assert await stripe.pay(session["id"]) == [200, 200]
    shown = (await admin(app, "tenant", "show", "acme")).data
    assert (shown["plan"], shown["token_balance"]) == ("pro", START + included)
    subscription_id = stripe.sessions[session["id"]].data["subscription"]
    first_invoice = stripe.invoice_paid(subscription_id, first=True)
    assert await stripe.deliver(first_invoice) == [200]  # once per Stripe invoice
    assert await shop.balance() == START + included

    assert await stripe.deliver(stripe.invoice_paid(subscription_id)) == [200]  # next month
    assert await shop.balance() == START + 2 * included
    again = await say(app, "/subscribe starter")
    assert "already subscribes to the pro plan" in again.texts[0]

    assert await stripe.deliver(stripe.invoice_failed(subscription_id)) == [200]
    async with app.deps.sessions() as db:
        status = (await db.execute(select(Subscription.status))).scalar_one()
        alert = (await db.execute(select(Alert))).scalar_one()
    assert status == "past_due"
    assert alert.kind == "payment_failed" and "acme's Pro plan, 29.00 EUR" in alert.detail

    assert await stripe.deliver(stripe.subscription_deleted(subscription_id)) == [200]
    shown = (await admin(app, "tenant", "show", "acme")).data
    assert (shown["plan"], shown["token_balance"]) == ("prepaid", START + 2 * included)
    kinds = [p["kind"] for p in (await admin(app, "payments", "acme")).data]
    assert kinds == ["renewal", "subscription"]
    assert await shop.ledger_ok()


async def test_first_invoice_before_checkout_completed_ends_the_same(shop: Shop) -> None:
    stripe = shop.stripe
    data = await admin(shop.app, "subscribe", "starter", "--tenant", "acme")
    session_id = data.data["session_id"]
    completed = stripe.completed(session_id)  # Stripe has it, we have not heard yet
    subscription_id = stripe.sessions[session_id].data["subscription"]
    assert await stripe.deliver(stripe.invoice_paid(subscription_id, first=True)) == [200]
    assert await stripe.deliver(completed) == [200]
    shown = (await admin(shop.app, "tenant", "show", "acme")).data
    assert (shown["plan"], shown["token_balance"]) == ("starter", START + 1_000_000)
    assert (await shop.payment(session_id)).status == "paid"
    assert await count(shop.app, Subscription) == 1
    assert await count(shop.app, Payment) == 1  # the checkout row carries the first invoice
    assert await shop.ledger_ok()


async def test_concurrent_deliveries_of_different_events_keep_the_ledger(shop: Shop) -> None:
    stripe = shop.stripe
    ids = [(await shop.buy(p))["session_id"] for p in ("starter", "pro", "enterprise")]
    events = [stripe.completed(i) for i in ids]
    results = await asyncio.gather(*(stripe.deliver(e) for e in events * 2))
    assert all(r == [200] for r in results)
    assert await shop.balance() == START + 12_500_000
    assert await shop.ledger_ok()


def test_stripe_settings_problems_and_warnings() -> None:
    from bot.settings import load_settings

    base = {"TELEGRAM_BOT_TOKEN": "1:x", "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}
    keyed = load_settings({**base, "STRIPE_SECRET_KEY": "sk_test_x"})
    assert not keyed.payments_enabled
    assert [p for p in keyed.service_problems() if "PUBLIC_BASE_URL" in p] == [
        "STRIPE_SECRET_KEY is set but PUBLIC_BASE_URL is not: Stripe Checkout needs it to send "
        "buyers back."
    ]
    assert "no payment is ever credited" in keyed.service_warnings()[0]
    ready = load_settings(
        {**base, "STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x",
         "PUBLIC_BASE_URL": PUBLIC_URL}
    )  # fmt: skip
    assert ready.payments_enabled and ready.service_problems() == []
    assert ready.service_warnings() == []
    assert "sk_test_x" not in repr(ready) and "whsec_x" not in repr(ready)


# -- who may open payment links, and how many ------------------------------------------------------


async def test_a_viewer_cannot_open_payment_links_for_a_tenant(shop: Shop) -> None:
    app = shop.app
    await admin(app, "admin", "add", "console:watcher", "viewer")

    for command in ("/buy starter --tenant acme", "/subscribe pro --tenant acme"):
        sink = await say(app, command, user="watcher", scope_key="x")
        assert sink.texts == [
            f"Permission denied: /{command.split()[0][1:]} --tenant needs the admin role."
        ]

    assert shop.stripe.sessions == {} and await count(app, Payment) == 0
    async with app.deps.sessions() as session:
        refused = (
            (await session.execute(select(AuditLog).where(AuditLog.action == "permission.denied")))
            .scalars()
            .all()
        )
    assert [(r.actor, r.target, r.after) for r in refused] == [
        ("console:watcher", "/buy --tenant", {"role": "viewer", "needs": "admin"}),
        ("console:watcher", "/subscribe --tenant", {"role": "viewer", "needs": "admin"}),
    ]
    # An admin may, and it is not a refusal.
    await admin(app, "admin", "add", "console:boss", "admin")
    sink = await say(app, "/buy starter --tenant acme", user="boss", scope_key="x")
    assert "Pay with the link" in sink.texts[0]


async def test_repeated_buy_reuses_the_chats_open_links(shop: Shop) -> None:
    app = shop.app
    await bind_console(app)
    first = await say(app, "/buy")
    packs = len(first.buttons)
    for _ in range(9):
        again = await say(app, "/buy")
        assert [b.url for b in again.buttons] == [b.url for b in first.buttons]
    single = await say(app, "/buy starter")
    assert single.buttons[0].url in {b.url for b in first.buttons}

    assert len(shop.stripe.sessions) == packs == await count(app, Payment)
    # Another chat of the tenant gets links of its own.
    other = await say(app, "/buy", user="u2")
    assert not {b.url for b in other.buttons} & {b.url for b in first.buttons}


# -- a subscription the tenant manages -------------------------------------------------------------


async def test_members_see_cancel_and_manage_their_subscription(shop: Shop) -> None:
    app, stripe = shop.app, shop.stripe
    await bind_console(app)
    none = await say(app, "/subscription")
    assert none.texts == ["Acme has no subscription. /subscribe PLAN starts one."]
    link = await say(app, "/subscribe pro")
    session_id = stripe.session_for_url(link.buttons[0].url)["id"]
    assert await stripe.pay(session_id) == [200, 200]
    sub_id = stripe.sessions[session_id].data["subscription"]
    period_end = stripe.subscriptions[sub_id]["items"]["data"][0]["current_period_end"]
    day = datetime.fromtimestamp(period_end, UTC).strftime("%Y-%m-%d")

    shown = await say(app, "/subscription")
    assert shown.texts == [f"Acme: pro plan, active; renews on {day}."]

    cancelled = await say(app, "/subscription cancel")
    assert cancelled.texts[0].startswith(f"Your pro plan will not renew: it ends on {day}")
    assert stripe.subscriptions[sub_id]["cancel_at_period_end"] is True, "asked of Stripe"
    # Stripe's event of that change is applied once, and changes nothing more.
    event = stripe.subscription_updated(sub_id)
    for _ in range(2):
        assert await stripe.deliver(event) == [200]
    again = (await admin(app, "subscription", "acme")).data["subscription"]
    assert again == {
        "plan": "pro",
        "status": "active",
        "current_period_end": datetime.fromtimestamp(period_end, UTC).isoformat(),
        "cancel_at_period_end": True,
    }
    async with app.deps.sessions() as session:
        [audited] = (
            (
                await session.execute(
                    select(AuditLog).where(AuditLog.action == "subscription.cancel")
                )
            )
            .scalars()
            .all()
        )
    assert audited.after == {"cancel_at_period_end": True}

    # Undone in the Billing Portal: the event says so, the chat is told.
    portal = await say(app, "/subscription portal")
    assert portal.buttons[0].url.startswith("https://billing.stripe.com/p/session/")
    assert stripe.portal_sessions[-1]["return_url"] == f"{PUBLIC_URL}/paid?portal=1"
    stripe.subscriptions[sub_id]["cancel_at_period_end"] = False
    assert await stripe.deliver(stripe.subscription_updated(sub_id)) == [200]
    assert (await say(app, "/subscription")).texts == [f"Acme: pro plan, active; renews on {day}."]


async def test_a_late_update_event_applies_what_stripe_has_now(shop: Shop) -> None:
    app, stripe = shop.app, shop.stripe
    subscribed = (await admin(app, "subscribe", "pro", "--tenant", "acme")).data
    assert await stripe.pay(subscribed["session_id"]) == [200, 200]
    sub_id = stripe.sessions[subscribed["session_id"]].data["subscription"]
    stripe.subscriptions[sub_id]["cancel_at_period_end"] = True
    cancelling = stripe.subscription_updated(sub_id)
    stripe.subscriptions[sub_id]["cancel_at_period_end"] = False
    undone = stripe.subscription_updated(sub_id)

    # Delivered newest first: the older event must not win.
    assert await stripe.deliver(undone) == [200]
    assert await stripe.deliver(cancelling) == [200]

    shown = (await admin(app, "subscription", "acme")).data["subscription"]
    assert shown["cancel_at_period_end"] is False


async def test_only_admins_cancel_another_tenants_subscription(shop: Shop) -> None:
    app = shop.app
    await admin(app, "admin", "add", "console:watcher", "viewer")
    refused = await say(app, "/subscription acme cancel", user="watcher", scope_key="x")
    assert refused.texts == ["Permission denied: /subscription SLUG needs the admin role."]
    shown = await say(app, "/subscription acme", user="watcher", scope_key="x")
    assert shown.texts == ["Acme has no subscription. /subscribe PLAN starts one."]
