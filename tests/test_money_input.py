"""Money typed by people (DESIGN §8) and bodies no one should be able to crash us with: amounts
and quantities parsed one way everywhere, huge totals refused, odd webhook bodies answered 400."""

from __future__ import annotations

import aiohttp

from storage.models import StripeEffect
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
