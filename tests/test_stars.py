"""Telegram Stars (DESIGN §8): packs and plans paid inside Telegram, through the real Telegram
adapter run by ``bot.service`` against the fake Bot API, on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import App
from bot.channels import build_channels
from bot.service import ServiceRunner
from core.errors import UsageError
from storage.models import Invoice, LedgerEntry, Payment, Subscription, Tenant
from tests.conftest import AppFactory, admin, tenant_with_tokens
from tests.fakes.telegram_server import FakeTelegramServer

USER = 515151
START = 100_000
SECRET = "stars-webhook-secret"


@dataclass
class Shop:
    fake: FakeTelegramServer
    service: ServiceRunner

    @property
    def app(self) -> App:
        return self.service.app

    async def say(self, text: str, count: int = 0) -> str:
        """Send ``text``; the bot's last text once it has sent ``count`` messages (default:
        one more than before)."""
        count = count or len(self.fake.chat_messages(USER)) + 1
        await self.fake.send_update(self.fake.private_message(USER, text))
        await self.fake.wait_for_bot_messages(USER, count)
        return self.fake.bot_texts(USER)[-1] if self.fake.bot_texts(USER) else ""

    async def balance(self, slug: str = "acme") -> int:
        async with self.app.deps.sessions() as session:
            query = select(Tenant.token_balance).where(Tenant.slug == slug)
            return int((await session.execute(query)).scalar_one())

    async def count(self, model: Any, *where: Any) -> int:
        async with self.app.deps.sessions() as session:
            query = select(func.count()).select_from(model).where(*where)
            return int((await session.execute(query)).scalar_one())

    async def ledger_ok(self) -> bool:
        return bool((await admin(self.app, "ledger", "verify")).data["ok"])

    async def settle(self) -> None:
        """Let the channel take every update sent so far, finish handling it, and the outbox
        deliver. (An update leaves the fake's queue when the next getUpdates confirms it,
        by which time its handler task has started and is tracked by the channel.)"""
        await self.fake.wait_for(lambda: self.fake.queued_updates == 0, within=30)
        await asyncio.sleep(0.05)
        [channel] = self.service.channels
        await channel.drain(10)  # type: ignore[attr-defined]
        await self.app.deps.outbox.drain(10)  # type: ignore[attr-defined]


def stars_env(fake: FakeTelegramServer, **extra: str) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_API_BASE": fake.base_url,
        "TELEGRAM_PAYMENTS": "stars",
        **extra,
    }


async def _service(make_app: AppFactory, fake: FakeTelegramServer, **env: str) -> ServiceRunner:
    app = await make_app(**stars_env(fake, **env))
    service = ServiceRunner(app, build_channels(app.settings, app.deps, app.pipeline, app.registry))
    await service.start()
    return service


@pytest.fixture
async def shop(make_app: AppFactory) -> AsyncIterator[Shop]:
    async with FakeTelegramServer() as fake:
        service = await _service(make_app, fake)
        try:
            await admin(service.app, "pack", "set", "pro", "--stars", "750")
            await admin(service.app, "plan", "set", "pro", "--stars", "1500")
            code = await tenant_with_tokens(service.app, tokens=START)
            shop = Shop(fake, service)
            await shop.say(f"/start {code}", 1)
            yield shop
        finally:
            await service.stop()


def _payload(fake: FakeTelegramServer) -> str:
    return str(fake.invoices[-1]["payload"])


async def test_stars_prices_are_set_and_listed(shop: Shop) -> None:
    listed = {p["slug"]: p for p in (await admin(shop.app, "pack", "list")).data}
    assert listed["pro"]["stars"] == 750 and listed["starter"]["stars"] is None
    plans = {p["slug"]: p for p in (await admin(shop.app, "plan", "list")).data}
    assert plans["pro"]["stars"] == 1500
    text = (await admin(shop.app, "pack", "list")).text
    assert "750 Stars" in text
    with pytest.raises(UsageError, match="at most 10,000 Stars"):
        await admin(shop.app, "plan", "set", "pro", "--stars", "10001")
    plans = {p["slug"]: p for p in (await admin(shop.app, "plan", "list")).data}
    assert plans["pro"]["stars"] == 1500


async def test_pack_paid_once_credits_once_with_receipt_and_notice(shop: Shop) -> None:
    fake = shop.fake
    listing = await shop.say("/buy", 2)
    assert "/buy pro: Pro, 2,000,000 tokens for 750 Stars" in listing
    assert "starter" not in listing  # no Stars price: not offered in Stars
    await shop.say("/buy pro", 4)
    [invoice] = fake.invoices
    assert invoice["currency"] == "XTR" and invoice["total_amount"] == 750
    [call] = fake.calls_to("sendInvoice", chat_id=USER)
    assert call.params.get("provider_token", "") == ""
    async with shop.app.deps.sessions() as session:
        row = (await session.execute(select(Payment))).scalar_one()
    assert invoice["payload"] == f"sb-pay:{row.id}" and row.status == "pending"

    answer, update = await fake.pay(USER, invoice)
    assert answer["ok"] is True and answer["seconds"] < 10
    assert update is not None
    await shop.settle()
    assert await shop.balance() == START + 2_000_000
    assert re.fullmatch(
        r"Payment received: \+2,000,000 tokens, balance 2,100,000\. Receipt INV-\d{4}-0001\.",
        fake.bot_texts(USER)[-1],
    )
    # The same update again (Telegram redelivers, or a restart replays it): nothing changes.
    told = len(fake.bot_texts(USER))
    await fake.send_update(update)
    await fake.send_update(update)
    await shop.settle()
    assert await shop.balance() == START + 2_000_000
    assert await shop.count(LedgerEntry, LedgerEntry.kind == "purchase") == 1
    assert await shop.count(Invoice) == 1
    assert len(fake.bot_texts(USER)) == told
    paid = (await admin(shop.app, "payments")).data[0]
    assert paid["provider"] == "telegram_stars" and paid["currency"] == "XTR"
    assert paid["amount"] == "750" and paid["status"] == "paid"
    # The invoice was paid: paying it again is refused at pre-checkout.
    again, nothing = await fake.pay(USER, invoice)
    assert again["ok"] is False and nothing is None
    assert "already paid" in again["error_message"]
    assert await shop.ledger_ok()


async def test_price_changed_before_pre_checkout_is_refused(shop: Shop) -> None:
    await shop.say("/buy pro", 3)
    invoice = shop.fake.invoices[-1]
    await admin(shop.app, "pack", "set", "pro", "--stars", "900")
    answer, update = await shop.fake.pay(USER, invoice)
    assert answer == {
        "ok": False,
        "error_message": "The price has changed since this invoice was made. "
        "Please ask for a new one.",
        "seconds": answer["seconds"],
    }
    assert update is None
    await admin(shop.app, "pack", "set", "pro", "--active", "no")
    answer, _ = await shop.fake.pay(USER, invoice)
    assert answer["ok"] is False
    assert await shop.balance() == START


async def test_suspended_tenant_is_refused_at_pre_checkout(shop: Shop) -> None:
    await shop.say("/buy pro", 3)
    invoice = shop.fake.invoices[-1]
    await admin(shop.app, "tenant", "suspend", "acme")
    answer, update = await shop.fake.pay(USER, invoice)
    assert answer["ok"] is False and update is None
    assert "suspended" in answer["error_message"]
    assert await shop.balance() == START


async def test_refund_takes_the_tokens_back_once(shop: Shop) -> None:
    fake = shop.fake
    await shop.say("/buy pro", 3)
    _, update = await fake.pay(USER, fake.invoices[-1])
    await shop.settle()
    assert update is not None
    charge = update["message"]["successful_payment"]["telegram_payment_charge_id"]
    [paid] = (await admin(shop.app, "payments")).data
    done = await admin(shop.app, "payments", "refund", str(paid["id"]))
    assert done.text.startswith(f"Refunded payment #{paid['id']} (acme): 750 Stars returned")
    [refund_call] = fake.calls_to("refundStarPayment")
    assert refund_call.params == {"user_id": USER, "telegram_payment_charge_id": charge}
    assert await shop.balance() == START
    await shop.settle()
    assert fake.bot_texts(USER)[-1] == (
        "Refund processed: 750 Stars returned, -2,000,000 tokens, balance 100,000."
    )
    # Asked again, and Telegram's own refunded_payment message: nothing more is taken back.
    again = await admin(shop.app, "payments", "refund", str(paid["id"]))
    assert again.text == f"Payment #{paid['id']} is already refunded."
    await fake.send_update(fake.refunded_payment(charge))
    await shop.settle()
    assert await shop.balance() == START
    assert await shop.count(LedgerEntry, LedgerEntry.kind == "refund") == 1
    assert await shop.count(Invoice, Invoice.kind == "credit_note") == 1
    assert await shop.ledger_ok()


async def test_subscription_renewal_grants_once_per_period_and_cancel(shop: Shop) -> None:
    fake = shop.fake
    text = await shop.say("/subscribe pro")
    assert text.startswith("Pro: 5,000,000 tokens for 1,500 Stars/month.")
    [invoice] = [i for i in fake.invoices if i.get("subscription_period") == 2592000]
    first_end = int(time.time()) + 2592000
    _, first = await fake.pay(USER, invoice, first_recurring=True, period_end=first_end)
    await shop.settle()
    assert first is not None
    assert await shop.balance() == START + 5_000_000
    renewal = fake.successful_payment(USER, invoice, recurring=True, period_end=first_end + 2592000)
    for _ in range(2):
        await fake.send_update(renewal)
    await shop.settle()
    assert await shop.balance() == START + 10_000_000
    # Another charge for a period already granted grants nothing (and is alerted).
    await fake.send_update(
        fake.successful_payment(USER, invoice, recurring=True, period_end=first_end + 2592000)
    )
    await shop.settle()
    assert await shop.balance() == START + 10_000_000
    assert await shop.count(Payment, Payment.kind == "renewal") == 2
    assert await shop.count(Subscription, Subscription.provider == "telegram_stars") == 1
    assert await shop.ledger_ok()
    cancelled = await shop.say("/subscription cancel")
    assert cancelled.startswith("Your pro plan will not renew")
    [edit] = fake.calls_to("editUserStarSubscription")
    charge = first["message"]["successful_payment"]["telegram_payment_charge_id"]
    assert edit.params["telegram_payment_charge_id"] == charge
    assert edit.params["is_canceled"] is True


async def test_paysupport_and_terms_answer_with_the_operators_texts(shop: Shop) -> None:
    default = await shop.say("/paysupport", 2)
    assert default.startswith("Payment support:")
    await admin(shop.app, "config", "set", "paysupport", "Write", "to", "billing@example.com")
    assert await shop.say("/paysupport", 3) == "Write to billing@example.com"
    await admin(shop.app, "config", "set", "terms", "Tokens", "never", "expire.")
    assert await shop.say("/terms", 4) == "Tokens never expire."
    [entry, *_] = (await admin(shop.app, "audit", "--limit", "5")).data
    assert entry["action"] == "config.set"


async def test_one_payment_delivered_to_two_processes_at_once_credits_once(
    make_app: AppFactory,
) -> None:
    env = {
        "TELEGRAM_MODE": "webhook",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "PUBLIC_BASE_URL": "http://127.0.0.1:9",
        "HTTP_PORT": "0",
    }
    async with FakeTelegramServer() as fake:
        first = await _service(make_app, fake, **env)
        second = await _service(make_app, fake, **env)
        try:
            await admin(first.app, "pack", "set", "pro", "--stars", "750")
            await tenant_with_tokens(first.app, tokens=START)
            [acme] = [t for t in (await admin(first.app, "tenant", "list")).data]
            assert acme["slug"] == "acme"
            async with first.app.deps.sessions() as session:
                tenant = (await session.execute(select(Tenant))).scalar_one()
            from core.envelope import ChatAddress

            address = ChatAddress("telegram", chat_key=str(USER), user_id=str(USER))
            pack = await _pack(first.app)
            assert first.app.deps.stars is not None
            await first.app.deps.stars.invoices.pack_invoice(
                tenant, pack, reply_to=address, actor="telegram:1"
            )
            update = fake.successful_payment(USER, fake.invoices[-1])
            urls = [f"http://127.0.0.1:{s.port}/telegram/webhook" for s in (first, second)]
            statuses = await asyncio.gather(
                *[fake.post_webhook(update, secret=SECRET, url=u) for u in urls for _ in (1, 2)]
            )
            assert statuses == [200, 200, 200, 200]
            for service in (first, second):
                [channel] = service.channels
                await channel.drain(10)  # type: ignore[attr-defined]
            async with first.app.deps.sessions() as session:
                balance = (await session.execute(select(Tenant.token_balance))).scalar_one()
                purchases = (
                    await session.execute(
                        select(func.count()).where(LedgerEntry.kind == "purchase")
                    )
                ).scalar_one()
            assert (balance, purchases) == (START + 2_000_000, 1)
            assert (await admin(first.app, "ledger", "verify")).data["ok"]
        finally:
            await second.stop()
            await first.stop()


async def _pack(app: App) -> Any:
    from storage.repositories.catalog import PackRepository

    async with app.deps.sessions() as session:
        return await PackRepository(session).get("pro")
