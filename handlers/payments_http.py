"""HTTP routes of payments: ``POST /stripe/webhook`` and the ``/paid`` return page."""

from __future__ import annotations

import logging
from functools import partial

from aiohttp import web

from billing.stripe.webhook import InvalidWebhook, StripeWebhook
from handlers.deps import Deps
from handlers.outbox import Outbox

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/stripe/webhook"
PAID_PATH = "/paid"
SIGNATURE_HEADER = "Stripe-Signature"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 4em auto; text-align: center">
<h1>{title}</h1><p>{body}</p></body></html>
"""


def install_payment_routes(app: web.Application, deps: Deps) -> None:
    app.router.add_get(PAID_PATH, paid_page)
    if deps.stripe_webhook is not None:
        app.router.add_post(WEBHOOK_PATH, partial(receive, deps.stripe_webhook, deps.outbox))


async def receive(webhook: StripeWebhook, outbox: Outbox, request: web.Request) -> web.Response:
    """Stripe's POST: 400 if not genuine (nothing changes), 200 once applied or already applied,
    500 if applying failed (rolled back, and Stripe retries)."""
    if not outbox.accepting:
        return web.json_response({"error": "shutting down"}, status=503)
    payload = await request.read()
    try:
        result = await webhook.handle(payload, request.headers.get(SIGNATURE_HEADER))
    except InvalidWebhook as exc:
        log.warning("rejected a Stripe webhook: %s", exc)
        return web.json_response({"error": "invalid signature"}, status=400)
    except Exception:
        log.exception("applying a Stripe webhook failed; Stripe will retry it")
        return web.json_response({"error": "internal error"}, status=500)
    outbox.post(result.outbox_ids)
    return web.json_response({"received": True, "outcome": result.outcome})


async def paid_page(request: web.Request) -> web.Response:
    """Where Stripe Checkout sends the customer back. It claims nothing: the webhook is what
    credits the payment, and the chat is told when it has."""
    if request.query.get("cancelled"):
        title, body = "Payment cancelled", "Nothing was charged. You can go back to the chat."
    elif request.query.get("portal"):
        title, body = "Billing settings saved", "You can go back to the chat."
    else:
        title, body = (
            "Payment received",
            "Thank you! You can go back to the chat: it tells you as soon as the tokens are in.",
        )
    return web.Response(text=_PAGE.format(title=title, body=body), content_type="text/html")
