# ruff: noqa: F811  (the fixtures imported from test_payments are parameters here)
"""Stripe webhooks on the money paths: amounts checked, subscriptions we did not sell refused,
a second subscription cancelled and refunded, refunds taken back in any delivery order, and a
property over any mix of them. Driven through the real webhook endpoint with events signed by
the fake Stripe (tests/fakes/stripe_server.py), which the real SDK also calls."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from storage.models import Alert, LedgerEntry, Payment, Subscription, Tenant
from tests.conftest import admin, tenant_with_tokens
from tests.fakes.stripe_server import FakeStripeServer
from tests.test_payments import (  # noqa: F401  (fixtures, used by name)
    START,
    Shop,
    count,
    open_shop,
    shop,
    stripe_api,
)

PLAN_TOKENS = {"starter": 1_000_000, "pro": 5_000_000}
PACK_TOKENS = {"starter": 500_000, "pro": 2_000_000}


async def alerts(shop: Shop, kind: str) -> list[Alert]:
    async with shop.app.deps.sessions() as session:
        return list((await session.execute(select(Alert).where(Alert.kind == kind))).scalars())


async def subscribe(shop: Shop, plan: str = "pro", slug: str = "acme") -> str:
    """A paid subscription of ``plan``: its Stripe id."""
    data = await admin(shop.app, "subscribe", plan, "--tenant", slug)
    session_id = str(data.data["session_id"])
    assert await shop.stripe.pay(session_id) == [200, 200]
    return str(shop.stripe.sessions[session_id].data["subscription"])


async def subscriptions(shop: Shop) -> dict[str, Subscription]:
    async with shop.app.deps.sessions() as session:
        rows = (await session.execute(select(Subscription))).scalars()
        return {row.stripe_subscription_id: row for row in rows}


# -- 6: invoice.paid amounts and origin ------------------------------------------------------------


async def test_invoice_paid_of_another_amount_or_currency_grants_nothing(shop: Shop) -> None:
    stripe = shop.stripe
    subscription_id = await subscribe(shop)
    assert await shop.balance() == START + PLAN_TOKENS["pro"]

    for forged in (
        stripe.invoice_paid(subscription_id, amount_paid=1),  # 0.01 EUR
        stripe.invoice_paid(subscription_id, currency="usd"),  # 29.00 USD
        stripe.invoice_paid(subscription_id, amount_paid=2_901),
    ):
        assert await stripe.deliver(forged) == [200]
    assert await shop.balance() == START + PLAN_TOKENS["pro"]
    found = await alerts(shop, "amount_mismatch")
    assert len(found) == 3
    assert "Stripe reported 0.01 EUR paid for the pro plan, expected 29.00 EUR" in found[0].detail
    assert "29.00 USD" in found[1].detail
    assert await count(shop.app, Payment, Payment.kind == "renewal") == 0

    assert await stripe.deliver(stripe.invoice_paid(subscription_id)) == [200]  # the real one
    assert await shop.balance() == START + 2 * PLAN_TOKENS["pro"]
    assert await shop.ledger_ok()


async def test_invoice_paid_of_a_subscription_we_never_sold_grants_nothing(shop: Shop) -> None:
    stripe = shop.stripe
    await tenant_with_tokens(shop.app, "globex", tokens=START)
    # A real but unpaid subscription Checkout row of globex, to be named by forged metadata.
    pending = await admin(shop.app, "subscribe", "pro", "--tenant", "globex")
    row_id = str(pending.data["session_id"])
    async with shop.app.deps.sessions() as session:
        globex_row = (
            await session.execute(select(Payment).where(Payment.stripe_session_id == row_id))
        ).scalar_one()
        pack_row_id = globex_row.id + 100

    def forged(metadata: dict[str, str]) -> dict[str, Any]:
        return stripe.event(
            "invoice.paid",
            {
                "id": f"in_forged_{len(metadata)}_{metadata.get('payment', '-')}",
                "object": "invoice",
                "customer": "cus_forged",
                "currency": "eur",
                "amount_due": 9_900,
                "amount_paid": 9_900,
                "billing_reason": "subscription_create",
                "status": "paid",
                "parent": {
                    "type": "subscription_details",
                    "subscription_details": {
                        "subscription": "sub_forged",
                        "metadata": metadata,
                    },
                },
            },
        )

    for metadata in (
        {"tenant": "acme", "plan": "enterprise"},  # the case: metadata alone
        {"tenant": "acme", "plan": "pro", "payment": str(globex_row.id)},  # globex's row
        {"tenant": "acme", "plan": "pro", "payment": str(pack_row_id)},  # no such row
    ):
        assert await stripe.deliver(forged(metadata)) == [200]
    assert await shop.balance("acme") == START
    assert await shop.balance("globex") == START
    assert await subscriptions(shop) == {}
    assert len(await alerts(shop, "subscription_unknown")) == 3
    shown = (await admin(shop.app, "tenant", "show", "acme")).data
    assert shown["plan"] != "enterprise"
    assert await shop.ledger_ok()


# -- 3: two subscription links both paid ----------------------------------------------------------


async def _second_subscription(shop: Shop, invoice_first: bool) -> tuple[str, str]:
    """acme subscribes to pro, then pays a second link (starter) made before the first was
    paid; the second's first invoice comes before its checkout when ``invoice_first``."""
    stripe = shop.stripe
    second = str(
        (await admin(shop.app, "subscribe", "starter", "--tenant", "acme")).data["session_id"]
    )
    first_id = await subscribe(shop, "pro")
    completed = stripe.completed(second)
    second_id = str(stripe.sessions[second].data["subscription"])
    paid = stripe.invoice_paid(second_id, first=True)
    for event in (paid, completed) if invoice_first else (completed, paid):
        assert await stripe.deliver(event) == [200]
    return first_id, second_id


async def _assert_second_undone(shop: Shop, first_id: str, second_id: str) -> None:
    stripe = shop.stripe
    assert await shop.balance() == START + PLAN_TOKENS["pro"]  # granted once
    cancels = [r for r in stripe.requests if r.method == "DELETE" and r.status == 200]
    assert [r.path for r in cancels] == [f"/v1/subscriptions/{second_id}"]
    assert stripe.subscriptions[second_id]["status"] == "canceled"
    assert stripe.subscriptions[first_id]["status"] == "active"
    first_invoice = stripe.subscriptions[second_id]["first_invoice"]
    charge = stripe.invoice_charge(first_invoice)
    assert [r["payment_intent"] for r in stripe.refunds] == [charge["payment_intent"]]
    assert charge["amount_refunded"] == charge["amount"] == 900

    rows = await subscriptions(shop)
    assert rows[first_id].status == "active"
    assert (rows[second_id].status, rows[second_id].duplicate_of) == (
        "canceled",
        rows[first_id].id,
    )
    async with shop.app.deps.sessions() as session:
        row = (
            await session.execute(
                select(Payment).where(Payment.stripe_subscription_id == second_id)
            )
        ).scalar_one()
    assert (row.status, row.tokens, row.refunded_micros) == ("refunded", 0, 9_000_000)
    assert row.stripe_payment_intent == charge["payment_intent"]
    [alert] = await alerts(shop, "duplicate_subscription")
    assert f"{second_id} was cancelled at Stripe and its 9.00 EUR refunded" in alert.detail
    assert (await admin(shop.app, "tenant", "show", "acme")).data["plan"] == "pro"


async def test_a_second_paid_subscription_is_cancelled_and_refunded(shop: Shop) -> None:
    stripe = shop.stripe
    first_id, second_id = await _second_subscription(shop, invoice_first=False)
    await _assert_second_undone(shop, first_id, second_id)

    # What Stripe sends next changes nothing: the refund's charge event, the cancellation, and
    # redeliveries of the second subscription's payment.
    charge = stripe.invoice_charge(stripe.subscriptions[second_id]["first_invoice"])
    assert await stripe.deliver(stripe.charge_refunded(charge["id"], 0)) == [200]
    assert await stripe.deliver(stripe.subscription_deleted(second_id)) == [200]
    assert await stripe.deliver(stripe.invoice_paid(second_id, first=True)) == [200]
    await _assert_second_undone(shop, first_id, second_id)
    assert await shop.ledger_ok()


async def test_a_second_subscription_whose_invoice_comes_first_is_undone_too(shop: Shop) -> None:
    first_id, second_id = await _second_subscription(shop, invoice_first=True)
    await _assert_second_undone(shop, first_id, second_id)
    assert await shop.ledger_ok()


async def test_fake_stripe_refuses_refunds_and_cancels_as_stripe_does(shop: Shop) -> None:

    from billing.stripe.client import build_stripe_client

    fake = shop.stripe
    client, http = build_stripe_client(fake.api_key, api_base=fake.base_url, timeout_seconds=2)
    try:
        await _refused_like_stripe(shop, client)
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]


async def _refused_like_stripe(shop: Shop, client: Any) -> None:
    import stripe as sdk

    fake = shop.stripe
    session_id = (await shop.buy("starter"))["session_id"]
    await fake.pay(session_id)
    intent = fake.sessions[session_id].data["payment_intent"]
    refund = await client.v1.refunds.create_async({"payment_intent": intent, "amount": 100})
    assert (refund.amount, refund.status) == (100, "succeeded")
    for params, code in (
        ({"payment_intent": intent, "amount": 401}, "amount_too_large"),
        ({"payment_intent": "pi_nope"}, "resource_missing"),
        ({}, "parameter_missing"),
    ):
        try:
            await client.v1.refunds.create_async(params)
        except sdk.InvalidRequestError as exc:
            assert exc.code == code
        else:
            raise AssertionError(f"{params} was accepted")
    await client.v1.refunds.create_async({"payment_intent": intent})
    try:
        await client.v1.refunds.create_async({"payment_intent": intent})
    except sdk.InvalidRequestError as exc:
        assert exc.code == "charge_already_refunded"
    else:
        raise AssertionError("refunded twice")
    try:
        await client.v1.subscriptions.cancel_async("sub_nope")
    except sdk.InvalidRequestError as exc:
        assert exc.http_status == 404
    else:
        raise AssertionError("cancelled a subscription that does not exist")


# -- 4: refunds in any order -----------------------------------------------------------------------


async def test_a_partial_refund_before_the_purchase_is_taken_back_once_credited(
    shop: Shop,
) -> None:
    stripe = shop.stripe
    session_id = (await shop.buy("pro"))["session_id"]
    completed = stripe.completed(session_id)
    refund = stripe.refunded(session_id, amount=500)  # 5.00 of 15.00
    assert await stripe.deliver(refund) == [200]
    assert await stripe.deliver(completed) == [200]
    assert await stripe.deliver(refund) == [200]
    # 2,000,000 × (1 − 5/15) = 1,333,333.3: the buyer keeps the fraction.
    assert await shop.balance() == START + 1_333_334
    payment = await shop.payment(session_id)
    assert (payment.status, payment.refunded_micros, payment.refunded_tokens) == (
        "paid",
        5_000_000,
        666_666,
    )
    assert await shop.ledger_ok()


async def test_partial_refunds_delivered_newest_first_record_the_total(shop: Shop) -> None:
    stripe = shop.stripe
    session_id = (await shop.buy("pro"))["session_id"]
    await stripe.pay(session_id)
    older = stripe.refunded(session_id, amount=300)  # 3.00 refunded in all
    newer = stripe.refunded(session_id, amount=600)  # 9.00 refunded in all
    for event in (newer, older, newer, older):
        assert await stripe.deliver(event) == [200]
    payment = await shop.payment(session_id)
    assert (payment.refunded_micros, payment.refunded_tokens) == (9_000_000, 1_200_000)
    assert await shop.balance() == START + 800_000
    assert await count(shop.app, LedgerEntry, LedgerEntry.kind == "refund") == 1
    assert await shop.ledger_ok()


# -- 5: refunding a subscription period ------------------------------------------------------------


async def test_refunding_a_paid_period_takes_its_tokens_back_and_alerts(shop: Shop) -> None:
    stripe = shop.stripe
    subscription_id = await subscribe(shop, "pro")
    renewal = stripe.invoice_paid(subscription_id)
    assert await stripe.deliver(renewal) == [200]
    assert await shop.balance() == START + 2 * PLAN_TOKENS["pro"]

    charge = stripe.invoice_charge(renewal["data"]["object"]["id"])
    assert "payments" not in renewal["data"]["object"]  # includable: never in an event
    partial = stripe.charge_refunded(charge["id"], 725)  # a quarter of 29.00
    assert await stripe.deliver(partial) == [200]
    assert await shop.balance() == START + 2 * PLAN_TOKENS["pro"] - 1_250_000
    assert await stripe.deliver(stripe.charge_refunded(charge["id"])) == [200]
    assert await shop.balance() == START + PLAN_TOKENS["pro"]
    async with shop.app.deps.sessions() as session:
        row = (await session.execute(select(Payment).where(Payment.kind == "renewal"))).scalar_one()
    assert (row.status, row.refunded_tokens, row.refunded_micros) == (
        "refunded",
        PLAN_TOKENS["pro"],
        29_000_000,
    )
    assert row.stripe_payment_intent == charge["payment_intent"]
    found = await alerts(shop, "subscription_refunded")
    assert len(found) == 2 and "acme's pro plan period" in found[0].detail

    first = stripe.invoice_charge(stripe.subscriptions[subscription_id]["first_invoice"])
    assert await stripe.deliver(stripe.charge_refunded(first["id"])) == [200]
    assert await shop.balance() == START
    assert await shop.ledger_ok()


# -- the property ----------------------------------------------------------------------------------

_slugs = itertools.count(1)


@st.composite
def money_histories(draw: st.DrawFn) -> dict[str, Any]:
    """Packs bought, maybe a subscription with renewals, partial refunds of any of them;
    the delivery order of the events shuffled, some delivered twice."""
    packs = draw(st.lists(st.sampled_from(sorted(PACK_TOKENS)), max_size=2))
    plan = draw(st.sampled_from([None, *sorted(PLAN_TOKENS)]))
    renewals = draw(st.integers(0, 2)) if plan else 0
    charges = len(packs) + (1 + renewals if plan else 0)
    refunds = [draw(st.lists(st.integers(1, 1_500), max_size=3)) for _ in range(charges)]
    return {
        "packs": packs,
        "plan": plan,
        "renewals": renewals,
        "refunds": refunds,
        "invoice_first": draw(st.booleans()),
        "random": draw(st.randoms(use_true_random=False)),
        "twice": draw(st.lists(st.booleans(), min_size=40, max_size=40)),
    }


def _owed(tokens: int, charge: dict[str, Any]) -> int:
    """What a refund takes back: the refunded share, rounded in the buyer's favour."""
    if charge["amount_refunded"] >= charge["amount"]:
        return tokens
    return tokens * int(charge["amount_refunded"]) // int(charge["amount"])


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=money_histories())
async def test_tokens_credited_are_bought_less_the_refunded_share(
    shop: Shop, history: dict[str, Any]
) -> None:
    stripe: FakeStripeServer = shop.stripe
    slug = f"prop{next(_slugs)}"
    await tenant_with_tokens(shop.app, slug, tokens=0)
    ordered: list[dict[str, Any]] = []  # must come in this order: a period paid before refunds
    shuffled: list[dict[str, Any]] = []  # any order
    paid: list[tuple[int, dict[str, Any]]] = []  # (tokens, charge) of every payment
    refunds = iter(history["refunds"])

    def refund_events(charge: dict[str, Any]) -> None:
        for amount in next(refunds):
            if charge["amount_refunded"] < charge["amount"]:
                shuffled.append(stripe.charge_refunded(charge["id"], amount))

    bought: set[str] = set()
    for pack in history["packs"]:
        session_id = (await shop.buy(pack, slug))["session_id"]
        shuffled.append(stripe.completed(session_id))
        charge = stripe.sessions[session_id].charge
        assert charge is not None
        if session_id not in bought:  # an unpaid link for the same pack may be given again
            bought.add(session_id)
            paid.append((PACK_TOKENS[pack], charge))
        refund_events(charge)
    if history["plan"]:
        plan = history["plan"]
        data = await admin(shop.app, "subscribe", plan, "--tenant", slug)
        session_id = str(data.data["session_id"])
        completed = stripe.completed(session_id)
        subscription_id = str(stripe.sessions[session_id].data["subscription"])
        first = stripe.invoice_paid(subscription_id, first=True)
        ordered += [first, completed] if history["invoice_first"] else [completed, first]
        invoices = [first] + [
            stripe.invoice_paid(subscription_id) for _ in range(history["renewals"])
        ]
        ordered += invoices[1:]
        for invoice in invoices:
            charge = stripe.invoice_charge(invoice["data"]["object"]["id"])
            paid.append((PLAN_TOKENS[plan], charge))
            refund_events(charge)
    history["random"].shuffle(shuffled)
    for event, twice in zip(ordered + shuffled, history["twice"] * 2, strict=False):
        for _ in range(2 if twice else 1):
            assert await stripe.deliver(event) == [200]

    expected = sum(tokens - _owed(tokens, charge) for tokens, charge in paid)
    assert await shop.balance(slug) == expected
    assert await shop.ledger_ok()
    async with shop.app.deps.sessions() as session:
        tenant_id = (
            await session.execute(select(Tenant.id).where(Tenant.slug == slug))
        ).scalar_one()
        rows = list(
            (await session.execute(select(Payment).where(Payment.tenant_id == tenant_id)))
            .scalars()
            .all()
        )
    by_intent = {row.stripe_payment_intent: row for row in rows}
    for _tokens, charge in paid:
        row = by_intent[charge["payment_intent"]]
        assert row.amount_micros == charge["amount"] * 10_000
        assert row.refunded_micros == charge["amount_refunded"] * 10_000
        assert (row.status == "refunded") == (charge["amount_refunded"] >= charge["amount"])
