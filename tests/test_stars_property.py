"""The Stars money path as a property (DESIGN §8, §10): whatever Telegram delivers, in whatever
order and however often, each charge credits at most once, refunds take back once, the ledger
verifies and the revenue converts to the billing currency exactly.

Driven through the real Stars service of a running app (``app.deps.stars``: invoices sent to the
fake Bot API, ``credit`` and ``refunded`` as the Telegram handlers call them) on the test
database (SQLite, or PostgreSQL with TEST_DATABASE_URL)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from billing.stars.amounts import STARS_CURRENCY, stars_in_billing_micros
from billing.stars.credit import StarsCharge
from billing.stars.service import StarsPayments
from bot.service import ServiceRunner
from core.envelope import ChatAddress
from core.money import MICROS_PER_UNIT
from storage.models import LedgerEntry, Payment, Tenant
from storage.repositories.catalog import PackRepository
from storage.repositories.payments import revenue_micros
from tests.conftest import AppFactory, admin, tenant_with_tokens
from tests.fakes.telegram_server import FakeTelegramServer
from tests.test_stars import _service

USER = 616161
RATE = Decimal("0.0137")
#: Pack slug → its Stars price in these examples.
STARS = {"starter": 250, "pro": 750}
TOKENS = {"starter": 500_000, "pro": 2_000_000}

_numbers = itertools.count(1)


@pytest.fixture
async def stars_service(make_app: AppFactory) -> AsyncIterator[ServiceRunner]:
    async with FakeTelegramServer() as fake:
        service = await _service(make_app, fake, STARS_TO_BILLING_RATE=str(RATE))
        try:
            for slug, stars in STARS.items():
                await admin(service.app, "pack", "set", slug, "--stars", str(stars))
            yield service
        finally:
            await service.stop()


@dataclass(frozen=True)
class Sale:
    """One charge Telegram may report: for invoice ``invoice``, of ``stars``."""

    invoice: int
    charge_id: str
    stars: int
    #: Whether the charge is what the invoice asked (else it must credit nothing).
    right: bool


@st.composite
def histories(draw: st.DrawFn) -> dict[str, Any]:
    """Invoices for packs; for each one or two charges (the second: the same invoice paid again),
    some of the wrong amount; each charge delivered 1-3 times, some twice at once; some refunded,
    the refund confirmed once or twice; all in a shuffled order."""
    packs = draw(st.lists(st.sampled_from(sorted(STARS)), min_size=1, max_size=3))
    charges = [
        draw(st.lists(st.booleans(), min_size=1, max_size=2)) for _ in packs
    ]  # per invoice: per charge, whether its amount is right
    total = sum(len(c) for c in charges)
    return {
        "packs": packs,
        "charges": charges,
        "deliveries": draw(st.lists(st.integers(1, 3), min_size=total, max_size=total)),
        "at_once": draw(st.lists(st.booleans(), min_size=total, max_size=total)),
        "refunds": draw(st.lists(st.integers(0, 2), min_size=total, max_size=total)),
        "random": draw(st.randoms(use_true_random=False)),
    }


async def _deliver(stars: StarsPayments, event: tuple[str, Sale, int], payload: str) -> None:
    kind, sale, _ = event
    charge = StarsCharge(
        charge_id=sale.charge_id,
        currency=STARS_CURRENCY,
        total_amount=sale.stars if sale.right else sale.stars + 1,
        payload=payload,
        user_id=USER,
    )
    if kind == "credit":
        await stars.credit(charge)
    else:  # two processes given the same update at the same moment
        await asyncio.gather(stars.credit(charge), stars.credit(charge))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
async def test_any_delivery_of_stars_payments_credits_each_charge_once(
    stars_service: ServiceRunner, history: dict[str, Any]
) -> None:
    app = stars_service.app
    stars = app.deps.stars
    assert stars is not None
    number = next(_numbers)
    slug = f"stars{number}"
    await tenant_with_tokens(app, slug, tokens=0)
    async with app.deps.sessions() as session:
        tenant = (await session.execute(select(Tenant).where(Tenant.slug == slug))).scalar_one()
        packs = {s: await PackRepository(session).get(s) for s in STARS}
        before = await _stars_revenue(session)
    address = ChatAddress("telegram", chat_key=str(USER), user_id=str(USER))
    payloads: list[str] = []
    sales: list[Sale] = []
    for index, (pack, rights) in enumerate(zip(history["packs"], history["charges"], strict=True)):
        invoice = await stars.invoices.pack_invoice(
            tenant, packs[pack], reply_to=address, actor="telegram:1"
        )
        payloads.append(f"sb-pay:{invoice.payment_id}")
        for n, right in enumerate(rights):
            sales.append(Sale(index, f"p{number}-{index}-{n}", STARS[pack], right))

    events: list[tuple[str, Sale, int]] = []
    for sale, times, at_once, refunds in zip(
        sales, history["deliveries"], history["at_once"], history["refunds"], strict=True
    ):
        events += [("credit", sale, 0)] * times
        if at_once:
            events.append(("at_once", sale, 0))
        events += [("refund", sale, n) for n in range(refunds)]
    history["random"].shuffle(events)

    refunded: set[str] = set()
    delivered: set[str] = set()
    waiting: list[tuple[str, Sale, int]] = []
    for event in events:
        kind, sale, _ = event
        if kind == "refund":
            if sale.charge_id in delivered:
                await stars.refunded(sale.charge_id, actor="telegram")
                refunded.add(sale.charge_id)
            else:  # Telegram confirms a refund only of a charge it reported: after it
                waiting.append(event)
            continue
        await _deliver(stars, event, payloads[sale.invoice])
        delivered.add(sale.charge_id)
    for _, sale, _ in waiting:
        await stars.refunded(sale.charge_id, actor="telegram")
        refunded.add(sale.charge_id)

    credited = [s for s in sales if s.right]
    kept = [s for s in credited if s.charge_id not in refunded]
    tokens = {s.charge_id: TOKENS[history["packs"][s.invoice]] for s in sales}
    async with app.deps.sessions() as session:
        balance = (await session.get(Tenant, tenant.id)).token_balance  # type: ignore[union-attr]
        rows = list(
            (await session.execute(select(Payment).where(Payment.tenant_id == tenant.id)))
            .scalars()
            .all()
        )
        purchases = list(
            (
                await session.execute(
                    select(LedgerEntry.reference).where(
                        LedgerEntry.tenant_id == tenant.id, LedgerEntry.kind == "purchase"
                    )
                )
            ).scalars()
        )
        after = await _stars_revenue(session)
    assert balance == sum(tokens[s.charge_id] for s in kept)
    # Each charge credited at most once, and only a right one.
    assert sorted(r or "" for r in purchases) == sorted(f"stars:{s.charge_id}" for s in credited)
    by_charge = {row.telegram_charge_id: row for row in rows if row.telegram_charge_id}
    assert set(by_charge) == {s.charge_id for s in sales}
    for sale in sales:
        row = by_charge[sale.charge_id]
        assert row.amount_micros == sale.stars * MICROS_PER_UNIT
        status = "refunded" if sale.charge_id in refunded else ("paid" if sale.right else "failed")
        assert row.status == status, (sale, row.status, row.error)
    assert (await admin(app, "ledger", "verify")).data["ok"]

    # Revenue: the Stars kept, in micro-units of XTR; in the billing currency exactly at RATE.
    net_stars = sum(s.stars for s in kept)
    assert after - before == net_stars * MICROS_PER_UNIT
    in_billing = stars_in_billing_micros(after - before, RATE)
    assert Decimal(in_billing) == Decimal(net_stars) * RATE * MICROS_PER_UNIT
    shown = Decimal((await admin(app, "stats")).data["revenue"])
    assert shown == (Decimal(stars_in_billing_micros(after, RATE)) / MICROS_PER_UNIT).quantize(
        Decimal("0.01")
    )


async def _stars_revenue(session: Any) -> int:
    """All Stars received, less refunds (every payment of the examples is paid today)."""
    now = datetime.now(UTC)
    day = timedelta(days=1)
    return await revenue_micros(session, now - day, now + day, STARS_CURRENCY)
