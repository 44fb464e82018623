"""HTTP routes of payments: ``POST /stripe/webhook`` and the ``/paid`` return page."""

from __future__ import annotations

import logging
from functools import partial

from aiohttp import hdrs, web
from babel.core import negotiate_locale

from billing.stripe.webhook import InvalidWebhook, StripeWebhook
from core.i18n import LANGUAGES, N_, Translators, supported
from handlers.deps import Deps
from handlers.outbox import Outbox

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/stripe/webhook"
PAID_PATH = "/paid"
SIGNATURE_HEADER = "Stripe-Signature"

_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 4em auto; text-align: center">
<h1>{title}</h1><p>{body}</p></body></html>
"""


def install_payment_routes(app: web.Application, deps: Deps) -> None:
    app.router.add_get(PAID_PATH, partial(paid_page, deps.translators))
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


async def paid_page(translators: Translators, request: web.Request) -> web.Response:
    """Where Stripe Checkout sends the customer back. It claims nothing: the webhook is what
    credits the payment, and the chat is told when it has. Written in the browser's language
    (``Accept-Language``) among en, fr and de, else in ``DEFAULT_LANGUAGE``."""
    if request.query.get("cancelled"):
        title, body = (
            N_("Payment cancelled"),
            N_("Nothing was charged. You can go back to the chat."),
        )
    elif request.query.get("portal"):
        title, body = N_("Billing settings saved"), N_("You can go back to the chat.")
    else:
        title, body = (
            N_("Payment received"),
            N_(
                "Thank you! You can go back to the chat: it tells you as soon as the tokens are in."
            ),
        )
    t = translators.get(browser_language(request.headers.get(hdrs.ACCEPT_LANGUAGE, "")))
    page = _PAGE.format(lang=t.language, title=t(title), body=t(body))
    headers = {hdrs.CONTENT_LANGUAGE: t.language, hdrs.VARY: hdrs.ACCEPT_LANGUAGE}
    return web.Response(text=page, content_type="text/html", headers=headers)


def browser_language(accept_language: str) -> str | None:
    """The first of en, fr, de an ``Accept-Language`` header asks for (``de-DE,de;q=0.9`` →
    ``de``), by its q-values (Babel matches each tag); None when it asks for none of them."""
    ranked: list[tuple[float, str]] = []
    for item in accept_language.split(","):
        tag, _, params = item.partition(";")
        tag = tag.strip()
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and tag != "*" and quality > 0:
            ranked.append((quality, tag))
    ranked.sort(key=lambda pair: -pair[0])  # stable: equal weights keep the header's order
    return supported(negotiate_locale([tag for _, tag in ranked], LANGUAGES, sep="-", aliases={}))
