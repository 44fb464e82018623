"""Money over a tenant's life: a trial that ends and is paid for, a Stripe subscriber's month
not invoiced twice, no invoice before a tenant existed, and invoices that leave ``sent`` no
longer payable. Driven through the commands, the pipeline, the real Stripe SDK against the fake
Stripe, and its signed webhooks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from bot.app import App
from core.errors import SwitchboardError
from storage.models import Alert, AuditLog, Invoice, Tenant
from storage.repositories.rollups import RollupRepository, UsageDelta
from storage.repositories.tenants import TenantRepository
from tests.conftest import AppFactory, admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.test_payments import Shop, ShopFactory, open_shop, stripe_api

__all__ = ["open_shop", "stripe_api"]


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def _set_tenant(app: App, slug: str, **values: object) -> None:
    async with app.deps.sessions.begin() as session:
        await session.execute(update(Tenant).where(Tenant.slug == slug).values(**values))


async def _end_trial(app: App, slug: str = "acme") -> None:
    await _set_tenant(app, slug, trial_ends_at=datetime.now(UTC) - timedelta(days=1))


async def _status(app: App, slug: str = "acme") -> str:
    return str((await admin(app, "tenant", "show", slug)).data["status"])


async def _activations(app: App) -> list[AuditLog]:
    async with app.deps.sessions() as session:
        query = select(AuditLog).where(AuditLog.action == "tenant.activate")
        return list((await session.execute(query)).scalars())


# -- 1. a trial that ended is served again once paid -----------------------------------------


async def test_trial_over_refusal_offers_links_and_paying_a_pack_makes_it_active(
    open_shop: ShopFactory,
    llm: FakeLLMServer,
) -> None:
    shop = await open_shop()
    app, stripe = shop.app, shop.stripe
    await tenant_with_tokens(app, tokens=0)
    await bind_console(app)
    await _end_trial(app)

    refused = await say(app, "hello")
    [text] = refused.texts
    assert text.startswith("Your trial has ended. To continue, buy tokens with /buy")
    assert "contact your provider" not in text
    assert "/subscribe pro (Pro: " in text and text.endswith("Top up now:")
    assert [b.label.split(":")[0] for b in refused.buttons] == ["Starter", "Pro", "Enterprise"]
    again = await say(app, "hello?")
    assert again.buttons == refused.buttons  # the same open links, not new sessions
    assert not llm.requests

    bought = await say(app, "/buy starter")
    [button] = bought.buttons
    session_id = stripe.session_for_url(button.url)["id"]
    assert await stripe.deliver(stripe.completed(session_id)) == [200]

    answered = await say(app, "hello again")
    assert answered.texts == [llm.reply_text]
    shown = (await admin(app, "tenant", "show", "acme")).data
    assert shown["status"] == "active"
    assert 0 < shown["token_balance"] < 500_000
    [activation] = await _activations(app)
    assert (activation.actor, activation.before) == ("stripe", {"status": "trial"})
    assert (activation.after or {})["status"] == "active"


@pytest.mark.parametrize("path", ["subscription", "invoice via Stripe", "invoice paid by hand"])
async def test_every_paid_path_ends_the_trial(
    open_shop: ShopFactory,
    llm: FakeLLMServer,
    path: str,
) -> None:
    shop = await open_shop()
    app, stripe = shop.app, shop.stripe
    await tenant_with_tokens(app, tokens=100_000)
    await bind_console(app)
    await _end_trial(app)
    assert (await say(app, "hello")).texts[0].startswith("Your trial has ended.")

    if path == "subscription":
        [button] = (await say(app, "/subscribe pro")).buttons
        assert await stripe.pay(stripe.session_for_url(button.url)["id"]) == [200, 200]
    else:
        number = (await admin(app, "invoice", "new", "acme", "10", "Setup")).data["number"]
        if path == "invoice via Stripe":
            sent = await app.deps.invoices.send(number, actor="test")
            assert sent.pay_url is not None
            session_id = stripe.session_for_url(sent.pay_url)["id"]
            assert await stripe.deliver(stripe.completed(session_id)) == [200]
        else:
            await admin(app, "invoice", "paid", number, "wire")
        assert (await admin(app, "invoice", "show", number)).data["status"] == "paid"

    assert await _status(app) == "active"
    assert len(await _activations(app)) == 1
    assert (await say(app, "hello again")).texts == [llm.reply_text]


async def test_trial_over_without_payments_still_says_contact_your_provider(app: App) -> None:
    await tenant_with_tokens(app, tokens=100_000)
    await bind_console(app)
    await _end_trial(app)
    refused = await say(app, "hello")
    assert refused.texts == ["Your trial has ended. Please contact your provider to continue."]
    assert not refused.buttons


async def test_balance_used_up_offers_packs_and_plans(open_shop: ShopFactory) -> None:
    shop = await open_shop()
    await tenant_with_tokens(shop.app, tokens=0)
    await bind_console(shop.app)
    refused = await say(shop.app, "hello")
    [text] = refused.texts
    assert text.startswith("Your token balance is used up.")
    assert "Or subscribe to a monthly plan:\n/subscribe starter (" in text
    assert len(refused.buttons) == 3


# -- 8. an invoice that leaves "sent" can no longer be paid -----------------------------------


async def _sent_invoice(shop: Shop) -> tuple[str, str]:
    """A sent invoice of acme and its open Checkout Session."""
    await tenant_with_tokens(shop.app, tokens=0)
    number = (await admin(shop.app, "invoice", "new", "acme", "10", "Setup")).data["number"]
    sent = await shop.app.deps.invoices.send(number, actor="test")
    assert sent.pay_url is not None
    session = shop.stripe.session_for_url(sent.pay_url)
    assert session["status"] == "open"
    return number, str(session["id"])


async def _alerts(app: App, kind: str) -> list[Alert]:
    async with app.deps.sessions() as session:
        return list((await session.execute(select(Alert).where(Alert.kind == kind))).scalars())


@pytest.mark.parametrize("leave", [["cancel"], ["paid", "by", "wire"]])
async def test_invoice_leaving_sent_expires_its_checkout_session(
    open_shop: ShopFactory,
    leave: list[str],
) -> None:
    shop = await open_shop()
    number, session_id = await _sent_invoice(shop)

    done = await admin(shop.app, "invoice", leave[0], number, *leave[1:])
    assert "pay link could not be closed" not in done.text
    assert shop.stripe.sessions[session_id].data["status"] == "expired"  # Stripe refuses to pay
    assert (await shop.payment(session_id)).status == "expired"
    shown = (await admin(shop.app, "invoice", "show", number)).data
    assert shown["pay_url"] is None and shown["status"] in ("cancelled", "paid")
    # Stripe's own expired event later changes nothing.
    assert await shop.stripe.deliver(shop.stripe.expired(session_id)) == [200]
    assert (await shop.payment(session_id)).status == "expired"
    assert not await _alerts(shop.app, "pay_link_open")


async def test_stripe_down_the_cancel_holds_and_an_alert_says_the_link_is_open(
    open_shop: ShopFactory,
) -> None:
    shop = await open_shop()
    number, session_id = await _sent_invoice(shop)

    shop.stripe.fail_next(503, count=3)  # the SDK's retries too
    done = await admin(shop.app, "invoice", "cancel", number)
    assert done.data["status"] == "cancelled"
    assert "pay link could not be closed" in done.text
    assert shop.stripe.sessions[session_id].data["status"] == "open"
    [alert] = await _alerts(shop.app, "pay_link_open")
    assert number in alert.detail and session_id in alert.detail

    # Paid anyway: nothing is marked paid, and the admins are asked to refund.
    assert await shop.stripe.deliver(shop.stripe.completed(session_id)) == [200]
    assert (await admin(shop.app, "invoice", "show", number)).data["status"] == "cancelled"
    assert len(await _alerts(shop.app, "invoice_paid_twice")) == 1


async def test_cancelling_a_draft_calls_stripe_for_nothing(open_shop: ShopFactory) -> None:
    shop = await open_shop()
    await tenant_with_tokens(shop.app, tokens=0)
    number = (await admin(shop.app, "invoice", "new", "acme", "10", "Setup")).data["number"]
    before = len(shop.stripe.requests)
    await admin(shop.app, "invoice", "cancel", number)
    assert len(shop.stripe.requests) == before


# -- 2. a month Stripe collected is not invoiced again ------------------------------------------


async def _usage(app: App, slug: str, day: date, charged: int, cost_usd: str) -> None:
    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(slug)
        await RollupRepository(session).record(
            UsageDelta(day, tenant.id, 0, "openai", "gpt-4o", "USD", True,
                       input_tokens=charged // 2, output_tokens=charged - charged // 2,
                       charged_tokens=charged, cost_micros=int(float(cost_usd) * 1_000_000))
        )  # fmt: skip


async def _invoices(app: App) -> int:
    async with app.deps.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Invoice)) or 0)


async def test_stripe_subscriber_month_has_no_plan_line_only_usage_beyond_included(
    open_shop: ShopFactory,
) -> None:
    clock = Clock(datetime(2026, 11, 10, 12, tzinfo=UTC))
    shop = await open_shop(clock=clock)
    app, stripe = shop.app, shop.stripe
    for slug in ("acme", "manual"):
        await tenant_with_tokens(app, slug, tokens=0)
        await _set_tenant(app, slug, created_at=datetime(2026, 10, 1, tzinfo=UTC))
    await bind_console(app)
    [button] = (await say(app, "/subscribe pro")).buttons
    assert await stripe.pay(stripe.session_for_url(button.url)["id"]) == [200, 200]
    assert (await admin(app, "tenant", "show", "acme")).data["plan"] == "pro"
    # Put on the pro plan by an admin, no Stripe: invoiced for it as before.
    await admin(app, "tenant", "plan", "manual", "pro")

    clock.at = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    await shop.service.invoice_jobs.tick()  # what `switchboard run` does on the 1st
    [manual] = (await admin(app, "invoice", "list", "manual")).data
    assert [line["description"] for line in manual["lines"]] == ["Pro plan, November 2026"]
    # Stripe collected 29.00: its receipt is the month's only invoice, no plan line billed.
    [receipt] = (await admin(app, "invoice", "list", "acme")).data
    assert (receipt["status"], receipt["total"], receipt["period"]) == ("paid", "29.00", None)
    nothing = await admin(app, "invoice", "generate", "acme", "--period", "2026-11")
    assert nothing.data == [] and nothing.text == "Nothing to invoice for 2026-11."

    # December: 1,000,000 tokens beyond the 5,000,000 included, and only that is invoiced.
    await _usage(app, "acme", date(2026, 12, 3), 6_000_000, "12")
    clock.at = datetime(2027, 1, 1, 0, 5, tzinfo=UTC)
    [doc] = (await admin(app, "invoice", "generate", "acme", "--period", "2026-12")).data
    [line] = doc["lines"]
    assert line["description"].startswith("Usage beyond the 5,000,000 included tokens")
    assert line["amount"] == "2.00"  # a sixth of the month's 12.00


async def test_subscription_ended_before_the_month_is_not_stripe_paid(
    open_shop: ShopFactory,
) -> None:
    clock = Clock(datetime(2026, 10, 10, tzinfo=UTC))
    shop = await open_shop(clock=clock)
    app, stripe = shop.app, shop.stripe
    await tenant_with_tokens(app, tokens=0)
    await _set_tenant(app, "acme", created_at=datetime(2026, 9, 1, tzinfo=UTC))
    await bind_console(app)
    [button] = (await say(app, "/subscribe pro")).buttons
    session = stripe.session_for_url(button.url)
    assert await stripe.pay(session["id"]) == [200, 200]
    clock.at = datetime(2026, 10, 25, tzinfo=UTC)
    subscription = stripe.sessions[session["id"]].data["subscription"]
    assert await stripe.deliver(stripe.subscription_deleted(subscription)) == [200]
    await admin(app, "tenant", "plan", "acme", "pro")  # then invoiced by hand from November

    clock.at = datetime(2026, 12, 2, tzinfo=UTC)
    october = await admin(app, "invoice", "generate", "acme", "--period", "2026-10")
    assert october.data == []  # Stripe's month
    [november] = (await admin(app, "invoice", "generate", "acme", "--period", "2026-11")).data
    assert [x["description"] for x in november["lines"]] == ["Pro plan, November 2026"]


# -- 7. no invoice for a month before the tenant existed ---------------------------------------


async def test_no_invoice_before_the_tenant_existed_and_a_full_base_fee_from_mid_month(
    make_app: AppFactory,
) -> None:
    clock = Clock(datetime(2026, 12, 15, tzinfo=UTC))
    app = await make_app(clock=clock)
    await admin(app, "plan", "set", "postpaid", "--base-fee", "10")
    for slug, created in (("newpp", date(2026, 12, 3)), ("mid", date(2026, 11, 20))):
        await tenant_with_tokens(app, slug, tokens=0)
        await admin(app, "tenant", "plan", slug, "postpaid")
        await _set_tenant(app, slug, created_at=datetime.combine(created, datetime.min.time(), UTC))

    with pytest.raises(SwitchboardError) as refused:
        await admin(app, "invoice", "generate", "newpp", "--period", "2026-11")
    assert refused.value.user_message == (
        "newpp was created on 2026-12-03, after 2026-11: there is nothing to invoice for that "
        "month."
    )
    assert await _invoices(app) == 0
    everyone = (await admin(app, "invoice", "generate", "--all", "--period", "2026-11")).data
    assert [d["tenant"] for d in everyone] == ["mid"]
    [line] = everyone[0]["lines"]  # created on the 20th: the whole month's base fee
    assert (line["description"], line["amount"]) == ("Postpaid base fee, November 2026", "10.00")

    clock.at = datetime(2027, 1, 2, tzinfo=UTC)
    [december] = (await admin(app, "invoice", "generate", "newpp", "--period", "2026-12")).data
    assert [x["amount"] for x in december["lines"]] == ["10.00"]
