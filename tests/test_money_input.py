"""Money typed by people (DESIGN §8) and bodies no one should be able to crash us with: amounts
and quantities parsed one way everywhere, huge totals refused, odd webhook bodies answered 400."""

from __future__ import annotations

import argparse
from decimal import Decimal

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from admin_commands.values import MAX_AMOUNT, amount
from bot.app import App
from core.errors import SwitchboardError, UsageError
from storage.models import InvoiceLine, StripeEffect
from storage.repositories.tenants import TenantRepository
from tests.conftest import AppFactory, admin, tenant_with_tokens
from tests.test_payments import START, Shop, count, open_shop, shop, stripe_api

__all__ = ["open_shop", "shop", "stripe_api"]

#: Validly signed bodies that are JSON but not a Stripe event, or not JSON we read at all.
ODD_BODIES = [
    "[]",
    '[{"id": "evt_1", "type": "checkout.session.completed"}]',
    '"checkout.session.completed"',
    "42",
    "null",
    "1e999999",
    '{"a": ' * 100_000 + "1" + "}" * 100_000,
    '{"id": "evt_1", "type": "checkout.session.completed", "data": []}',
    '{"id": "evt_1", "type": "checkout.session.completed", "data": {"object": "cs_1"}}',
    '{"id": "evt_1", "type": "checkout.session.completed", "data": {"object": ['
    + "[" * 900
    + "]" * 900
    + "]}}",
    '{"id": "evt_1", "type": "checkout.session.completed", "data": {"object": {"id": "cs_1",'
    ' "metadata": ' + "[" * 900 + "]" * 900 + "}}}",
    '{"id": "evt_1", "type": ["checkout.session.completed"], "data": {"object": {"id": "cs_1"}}}',
]


async def test_signed_bodies_that_are_not_events_get_400(shop: Shop) -> None:
    stripe = shop.stripe
    async with aiohttp.ClientSession() as http:
        for body in ODD_BODIES:
            headers = {"Stripe-Signature": stripe.sign(body)}
            async with http.post(shop.webhook_url, data=body, headers=headers) as resp:
                assert resp.status == 400, body[:80]
    assert await shop.balance() == START
    assert await count(shop.app, StripeEffect) == 0
    session_id = (await shop.buy())["session_id"]
    assert await stripe.deliver(stripe.completed(session_id)) == [200], "real events still work"
    assert await shop.balance() == START + 2_000_000


# -- money and quantities typed by people -----------------------------------------------------

MONEY = st.decimals(min_value=0, max_value=MAX_AMOUNT, places=2, allow_nan=False)


@given(MONEY, st.sampled_from([".", ","]), st.booleans())
def test_any_amount_written_with_a_point_or_a_comma_reads_back(
    value: Decimal, separator: str, short: bool
) -> None:
    text = f"{value:.2f}".replace(".", separator)
    if short:  # 10.5 and 10 as people also write them
        text = str(value.normalize() if value == value.to_integral() else value).replace(
            ".", separator
        )
        text = text if "E" not in text else f"{value:.0f}"
    assert amount(text) == value
    assert amount(f" {text} ") == value


#: Characters people type into amounts, including the confusing ones.
TYPED = st.text(
    alphabet=st.sampled_from("0123456789.,_ +-eE'\u00a0\u0660\u0661\u06f5\uff11\u0967"),
    max_size=12,
)


def _readings(text: str) -> set[Decimal]:
    """Every value a person could mean by ``text``: its ``.`` or ``,`` as the decimal point,
    or (before a group of exactly three digits) as a thousands separator."""
    body = text.strip()
    meanings = {Decimal(body.replace(",", "."))}
    for separator in ".,":
        if body.count(separator) == 1 and len(body.rpartition(separator)[2]) == 3:
            meanings.add(Decimal(body.replace(separator, "")))
    return meanings


@given(TYPED)
def test_what_the_parser_accepts_has_exactly_one_meaning(text: str) -> None:
    try:
        value = amount(text)
    except argparse.ArgumentTypeError:
        return
    assert text.strip().isascii() and all(c in "0123456789.," for c in text.strip())
    assert _readings(text) == {value}, "read as a decimal point or as thousands: the same"


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("1,050.00", "ambiguous"),
        ("1.050,00", "ambiguous"),
        ("1 050", "ambiguous"),
        ("1,050", "ambiguous"),
        ("1.050", "ambiguous"),
        ("1_000", "ambiguous"),
        ("\u0661\u0660", "digits 0-9"),
        ("\u06f5", "digits 0-9"),
        ("+5", "no sign"),
        ("-5", "no sign"),
        ("1e3", "no exponents"),
        ("10.5055", "more than 2 decimal places"),
        ("abc", "is not an amount"),
        ("", "is not an amount"),
        ("100000000.01", "at most 100,000,000"),
        ("9" * 5000, "too large"),
    ],
)
def test_refusals_say_how_to_write_it(typed: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message) as refused:
        amount(typed)
    assert "1050.50 or 1050,50" in str(refused.value) or "at most" in str(refused.value)


async def _lines(app: App) -> list[tuple[Decimal, int, int]]:
    async with app.deps.sessions() as session:
        rows = await session.execute(
            select(InvoiceLine.quantity, InvoiceLine.unit_price_micros, InvoiceLine.amount_micros)
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def test_a_decimal_comma_bills_what_was_typed(make_app: AppFactory) -> None:
    app: App = await make_app()
    await tenant_with_tokens(app, "acme", tokens=0)
    made = await admin(app, "invoice", "new", "acme", "10,50", "Consulting")
    assert made.data["lines"][0]["amount"] == "10.50" and made.data["subtotal"] == "10.50"
    number = made.data["number"]
    hours = await admin(app, "invoice", "line", number, "0,33", "Support", "--qty", "1,5")
    line = hours.data["lines"][1]
    assert line["quantity"] == "1.5" and line["unit_price"] == "0.33"
    assert line["amount"] == "0.50", "0.495 rounded half up to the cent"
    assert hours.data["subtotal"] == "11.00" and made.data["lines"][0]["quantity"] == 1
    assert await _lines(app) == [
        (Decimal(1), 10_500_000, 10_500_000),
        (Decimal("1.5"), 330_000, 500_000),
    ]
    shown = await admin(app, "invoice", "show", number)
    assert "1.5 × 0.33" in shown.text


@pytest.mark.parametrize(
    "words",
    [
        ["invoice", "new", "acme", "1,050", "x"],
        ["invoice", "new", "acme", "\u0661\u0660", "x"],
        ["invoice", "new", "acme", "1_000", "x"],
        ["invoice", "new", "acme", "5", "x", "--qty", "1.005"],
        ["invoice", "new", "acme", "5", "x", "--qty", "0"],
        ["invoice", "new", "acme", "5", "x", "--qty", "1e2"],
        ["pack", "set", "pro", "--price", "1.050,00"],
        ["plan", "set", "postpaid", "--base-fee", "1 050"],
        ["plan", "set", "postpaid", "--markup", "1,300"],
    ],
)
async def test_ambiguous_or_foreign_numbers_change_nothing(
    make_app: AppFactory, words: list[str]
) -> None:
    app: App = await make_app()
    await tenant_with_tokens(app, "acme", tokens=0)
    before = [(await admin(app, "pack", "list")).data, (await admin(app, "plan", "list")).data]
    with pytest.raises(UsageError):
        await admin(app, *words)
    assert await _lines(app) == []
    assert [
        (await admin(app, "pack", "list")).data,
        (await admin(app, "plan", "list")).data,
    ] == before


async def test_pack_and_plan_prices_take_a_decimal_comma(make_app: AppFactory) -> None:
    app: App = await make_app()
    pack = await admin(app, "pack", "set", "pro", "--price", "16,50")
    plan = await admin(app, "plan", "set", "postpaid", "--base-fee", "9,90", "--markup", "1,25")
    assert pack.data["price"] == "16.50"
    assert (plan.data["base_fee"], plan.data["markup"]) == ("9.90", "1.25")


async def test_a_zero_decimal_currency_refuses_cents(make_app: AppFactory) -> None:
    app: App = await make_app()
    await tenant_with_tokens(app, "acme", tokens=0)
    async with app.deps.sessions.begin() as session:
        (await TenantRepository(session).get("acme")).billing_currency = "JPY"
    with pytest.raises(UsageError, match="JPY amounts have 0 decimal places"):
        await admin(app, "invoice", "new", "acme", "10,50", "x")
    made = await admin(app, "invoice", "new", "acme", "1050", "x")
    assert made.data["total"].startswith("1") and await _lines(app) != []


async def test_huge_totals_are_refused_not_a_traceback(make_app: AppFactory) -> None:
    app: App = await make_app()
    await tenant_with_tokens(app, "acme", tokens=0)
    with pytest.raises(SwitchboardError, match=r"at most 1,000,000,000\.00") as refused:
        await admin(app, "invoice", "new", "acme", "100000000", "y", "--qty", "100000")
    assert "OverflowError" not in refused.value.user_message
    made = await admin(app, "invoice", "new", "acme", "100000000", "y", "--qty", "5")
    for _ in range(2):  # the third line would take the total past the limit
        await admin(app, "invoice", "line", made.data["number"], "100000000", "y", "--qty", "1")
    with pytest.raises(SwitchboardError, match=r"at most 1,000,000,000\.00"):
        await admin(app, "invoice", "line", made.data["number"], "100000000", "y", "--qty", "3")
    assert len(await _lines(app)) == 3
