# ruff: noqa: F811  (the fixtures imported from test_payments are parameters here)
"""``/payments refund ID`` of a Stripe payment (the other provider of the same command as Stars):
a refund created through the real Stripe SDK against the fake Stripe, and the tokens taken back
once when the signed ``charge.refunded`` webhook arrives, however often it does."""

from __future__ import annotations

from sqlalchemy import func, select

from storage.models import Invoice, LedgerEntry
from tests.conftest import admin
from tests.test_payments import (  # noqa: F401  (fixtures, used by name)
    START,
    Shop,
    open_shop,
    shop,
    stripe_api,
)

PRO_TOKENS = 2_000_000


async def _refund_entries(shop: Shop) -> int:
    async with shop.app.deps.sessions() as session:
        query = select(func.count()).where(LedgerEntry.kind == "refund")
        return int((await session.execute(query)).scalar_one())


async def test_stripe_payment_refunded_by_command_takes_tokens_back_once(shop: Shop) -> None:
    stripe = shop.stripe
    session_id = str((await shop.buy("pro"))["session_id"])
    assert await stripe.pay(session_id) == [200]
    assert await shop.balance() == START + PRO_TOKENS
    payment = await shop.payment(session_id)

    done = await admin(shop.app, "payments", "refund", str(payment.id))
    [refund] = stripe.refunds
    charge = stripe.sessions[session_id].charge
    assert charge is not None
    assert refund["charge"] == charge["id"] and refund["amount"] == charge["amount"] == 1500
    assert done.data["refund_id"] == refund["id"]
    assert done.text.startswith(f"Refund {refund['id']} of ")
    # Asked of Stripe, not yet confirmed: nothing is taken back before the webhook.
    assert await shop.balance() == START + PRO_TOKENS
    assert await _refund_entries(shop) == 0

    # Stripe's confirmation (the refund already made: 0 more), delivered twice.
    event = stripe.charge_refunded(charge["id"], 0)
    assert await stripe.deliver(event) == [200]
    assert await stripe.deliver(event) == [200]
    assert await shop.balance() == START
    assert await _refund_entries(shop) == 1
    async with shop.app.deps.sessions() as session:
        notes = (
            await session.execute(select(func.count()).where(Invoice.kind == "credit_note"))
        ).scalar_one()
    assert notes == 1
    after = await shop.payment(session_id)
    assert (after.status, after.refunded_tokens) == ("refunded", PRO_TOKENS)
    # The command again: refused by the row's state, Stripe is not asked a second time.
    again = await admin(shop.app, "payments", "refund", str(payment.id))
    assert again.text == f"Payment #{payment.id} is already refunded."
    assert len(stripe.refunds) == 1
    assert await shop.ledger_ok()
