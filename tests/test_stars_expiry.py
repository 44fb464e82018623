"""A Telegram Stars subscription that stops renewing ends when its paid period is over
(``billing.stars.expiry``): the tenant is back on prepaid, keeps its tokens and is told, once,
however often the hourly sweep runs; a renewal that arrived in time keeps the plan. Driven
through the real Telegram adapter against the fake Bot API (fixtures of tests/test_stars.py)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from billing.stars.expiry import GRACE
from storage.models import AuditLog, LedgerEntry, OutboxMessage, Subscription, Tenant
from tests.conftest import admin
from tests.test_stars import START, USER, Shop, shop  # noqa: F401 (fixture)

MONTH = 2592000
INCLUDED = 5_000_000  # the pro plan's tokens per period
ENDED_DE = (
    "Ihr Abonnement pro ist beendet; Ihre Token bleiben Ihnen erhalten. "
    "Laden Sie mit /buy auf, wenn Sie mehr brauchen."
)


async def _subscribe(shop: Shop, period_end: int) -> dict[str, Any]:  # noqa: F811
    """``/subscribe pro`` paid in Stars, its first period ending at ``period_end``."""
    await shop.say("/subscribe pro")
    [invoice] = [i for i in shop.fake.invoices if i.get("subscription_period") == MONTH]
    _, paid = await shop.fake.pay(USER, invoice, first_recurring=True, period_end=period_end)
    await shop.settle()
    assert paid is not None
    assert await _plan(shop) == "pro"
    assert await shop.balance() == START + INCLUDED
    return invoice


async def _plan(shop: Shop) -> str:  # noqa: F811
    async with shop.app.deps.sessions() as session:
        return str(await session.scalar(select(Tenant.plan).where(Tenant.slug == "acme")))


async def _ended_notices(shop: Shop) -> list[str]:  # noqa: F811
    async with shop.app.deps.sessions() as session:
        query = select(OutboxMessage.text).where(OutboxMessage.cause_kind == "stars.expired")
        return list((await session.execute(query)).scalars())


async def test_a_stars_subscription_not_renewed_returns_to_prepaid_once(
    shop: Shop,  # noqa: F811
) -> None:
    await admin(shop.app, "tenant", "set", "acme", "--language", "de")
    # The period ended two hours ago and no renewal came (the subscriber's Stars ran out).
    await _subscribe(shop, int(time.time() - GRACE.total_seconds()) - 3600)
    ledger = await shop.count(LedgerEntry)

    runner = shop.service
    written = await runner.stars_expiry.tick()
    assert written is not None and len(written) == 1
    shop.app.deps.outbox.post(written)
    await shop.settle()
    assert await _plan(shop) == "prepaid"
    assert await shop.balance() == START + INCLUDED, "the tokens granted stay"
    assert await shop.count(LedgerEntry) == ledger, "nothing charged, nothing taken back"
    assert shop.fake.bot_texts(USER)[-1] == ENDED_DE
    async with shop.app.deps.sessions() as session:
        row = (await session.execute(select(Subscription))).scalar_one()
        [audit] = (
            (
                await session.execute(
                    select(AuditLog).where(AuditLog.action == "subscription.expire")
                )
            )
            .scalars()
            .all()
        )
    assert row.status == "canceled" and row.canceled_at is not None
    assert (audit.actor, audit.target) == ("scheduler", row.stripe_subscription_id)
    assert audit.before is not None and audit.after is not None
    assert (audit.before["plan"], audit.after["plan"]) == ("pro", "prepaid")

    # The same hour again (another process's tick), and a sweep past the claim: nothing more.
    assert await runner.stars_expiry.tick() is None
    assert await runner.stars_expiry.sweep() == []
    await shop.settle()
    assert await _plan(shop) == "prepaid"
    assert await _ended_notices(shop) == [ENDED_DE]
    assert shop.fake.bot_texts(USER).count(ENDED_DE) == 1
    assert await shop.count(AuditLog, AuditLog.action == "subscription.expire") == 1
    assert await shop.balance() == START + INCLUDED
    assert await shop.ledger_ok()


async def test_a_renewed_or_still_running_stars_subscription_keeps_its_plan(
    shop: Shop,  # noqa: F811
) -> None:
    first_end = int(time.time() - GRACE.total_seconds()) - 3600
    invoice = await _subscribe(shop, first_end)
    # Telegram renewed it in time: the next period ends in a month.
    renewal = shop.fake.successful_payment(
        USER, invoice, recurring=True, period_end=first_end + MONTH
    )
    await shop.fake.send_update(renewal)
    await shop.settle()
    assert await shop.balance() == START + 2 * INCLUDED

    # Cancelled now: it still runs to the end of the period paid for.
    assert (await shop.say("/subscription cancel")).startswith("Your pro plan will not renew")
    assert await shop.service.stars_expiry.sweep() == []
    assert await _plan(shop) == "pro"
    assert await shop.balance() == START + 2 * INCLUDED
    assert await _ended_notices(shop) == []
    async with shop.app.deps.sessions() as session:
        status = await session.scalar(select(Subscription.status))
    assert status == "active"


async def test_a_renewal_that_arrives_after_the_sweep_restores_the_plan(
    shop: Shop,  # noqa: F811
) -> None:
    """Telegram charged the renewal on time but its update reached us only after the sweep
    had ended the subscription (an outage longer than the grace): the period is paid, so the
    plan comes back with its tokens, once."""
    first_end = int(time.time() - GRACE.total_seconds()) - 3600
    invoice = await _subscribe(shop, first_end)
    assert await shop.service.stars_expiry.sweep()
    assert await _plan(shop) == "prepaid"

    late = shop.fake.successful_payment(USER, invoice, recurring=True, period_end=first_end + MONTH)
    await shop.fake.send_update(late)
    await shop.settle()
    await shop.fake.send_update(late)  # redelivered: nothing more
    await shop.settle()
    assert await _plan(shop) == "pro"
    assert await shop.balance() == START + 2 * INCLUDED
    async with shop.app.deps.sessions() as session:
        row = (await session.execute(select(Subscription))).scalar_one()
    assert (row.status, row.canceled_at) == ("active", None)
    assert await shop.count(AuditLog, AuditLog.action == "subscription.resume") == 1
    # Still running: the sweep leaves it alone, and the ledger holds.
    assert await shop.service.stars_expiry.sweep() == []
    assert await _plan(shop) == "pro"
    assert await shop.ledger_ok()
