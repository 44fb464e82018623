"""Stripe webhooks: verify, then apply each effect exactly once.

Exactly once comes from the database, not from reading first: the effect's key (say
``checkout.fulfil:cs_…``) is inserted into ``stripe_effects`` in the same transaction as the
effect. A replay, a duplicate, or the same event reaching two processes at once fails on the
unique key and changes nothing; a handler that fails rolls back the key with the effect, so
Stripe's retry applies it later.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

from billing.invoicing.documents import DocumentDelivery
from billing.stripe.checkout_events import (
    on_charge_refunded,
    on_session_completed,
    on_session_expired,
    on_session_failed,
    refund_key,
    session_key,
)
from billing.stripe.effects import EffectContext, Route, StripeApi, by_object
from billing.stripe.subscription_events import (
    failed_invoice_key,
    on_invoice_failed,
    on_invoice_paid,
    on_subscription_deleted,
    on_subscription_updated,
    updated_key,
)
from core.clock import Clock
from storage.db import Sessions
from storage.repositories.payments import StripeEffectRepository

log = logging.getLogger(__name__)

#: Seconds a signature's timestamp may be old (Stripe's own default).
SIGNATURE_TOLERANCE = 300
#: How deeply a webhook body may nest. Stripe's events are a dozen levels deep at most; a deeper
#: body is refused before anything walks it (which would otherwise recurse to a crash).
MAX_JSON_DEPTH = 64

ROUTES: dict[str, Route] = {
    "checkout.session.completed": Route(session_key, on_session_completed),
    "checkout.session.async_payment_succeeded": Route(session_key, on_session_completed),
    "checkout.session.async_payment_failed": Route(by_object, on_session_failed),
    "checkout.session.expired": Route(by_object, on_session_expired),
    "invoice.paid": Route(by_object, on_invoice_paid),
    "invoice.payment_failed": Route(failed_invoice_key, on_invoice_failed),
    "customer.subscription.updated": Route(updated_key, on_subscription_updated),
    "customer.subscription.deleted": Route(by_object, on_subscription_deleted),
    "charge.refunded": Route(refund_key, on_charge_refunded),
}
#: The event types to enable on the Stripe webhook endpoint (the README lists them).
HANDLED_EVENTS = tuple(ROUTES)


class InvalidWebhook(Exception):
    """The request is not a genuine, fresh Stripe event (answered 400, nothing changes)."""


@dataclass(frozen=True, slots=True)
class WebhookResult:
    outcome: Literal["processed", "duplicate", "ignored"]
    event_id: str
    event_type: str
    #: Outbox rows the effect wrote (its notices), to deliver after commit.
    outbox_ids: tuple[int, ...] = ()


class StripeWebhook:
    def __init__(
        self,
        sessions: Sessions,
        secret: str,
        *,
        clock: Clock,
        tolerance: int = SIGNATURE_TOLERANCE,
        api: StripeApi | None = None,
        issuer_country: str = "",
        documents: DocumentDelivery | None = None,
    ) -> None:
        self._api = api
        self._documents = documents
        self._issuer_country = issuer_country
        self._sessions = sessions
        self._secret = secret
        self._clock = clock
        self._tolerance = tolerance

    def verify(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event, if ``Stripe-Signature`` is a valid, fresh signature of ``payload`` and
        the payload is an event object (a signed array, string, number or deeply nested body
        is not: answered 400, never a traceback)."""
        import stripe  # here: importing the SDK takes a while, and only webhooks need it

        if not signature:
            raise InvalidWebhook("no Stripe-Signature header")
        # The shape first, so that the SDK only ever builds an event from a bounded object.
        event_json(payload)
        try:
            event = stripe.Webhook.construct_event(
                payload, signature, self._secret, self._tolerance
            )
        except stripe.SignatureVerificationError:
            raise InvalidWebhook("bad or stale signature") from None
        except ValueError:
            raise InvalidWebhook("payload is not a Stripe event") from None
        data: dict[str, Any] = event.to_dict()
        return data

    async def handle(self, payload: bytes, signature: str | None) -> WebhookResult:
        event = self.verify(payload, signature)
        event_id, event_type = str(event.get("id", "")), str(event["type"])
        route = ROUTES.get(event_type)
        if route is None:
            return WebhookResult("ignored", event_id, event_type)
        obj = event["data"]["object"]
        key = route.key(event_type, obj)
        now = self._clock()
        async with self._sessions.begin() as session:
            claimed = await StripeEffectRepository(session).claim(
                key, event_id=event_id, event_type=event_type, now=now
            )
            if not claimed:
                log.info("Stripe %s %s: %s already applied", event_type, event_id, key)
                return WebhookResult("duplicate", event_id, event_type)
            ctx = EffectContext(
                session, now, event_id, event_type, api=self._api,
                issuer_country=self._issuer_country, cause=key, documents=self._documents,
            )  # fmt: skip
            await route.apply(ctx, obj)
            await ctx.settle_told()
        log.info("Stripe %s %s applied (%s)", event_type, event_id, key)
        return WebhookResult("processed", event_id, event_type, tuple(ctx.outbox_ids))


def event_json(payload: bytes) -> dict[str, Any]:
    """``payload`` parsed, if it is a JSON object shaped like a Stripe event: a string
    ``type`` and a ``data.object`` that is an object with an ``id``, nested at most
    :data:`MAX_JSON_DEPTH` deep. Raises :class:`InvalidWebhook` otherwise."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested past Python's limit
        raise InvalidWebhook("payload is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidWebhook(f"payload is a JSON {type(data).__name__}, not an event")
    if _depth(data) > MAX_JSON_DEPTH:
        raise InvalidWebhook(f"payload nests deeper than {MAX_JSON_DEPTH} levels")
    inner = data.get("data")
    obj = inner.get("object") if isinstance(inner, dict) else None
    if not isinstance(data.get("type"), str) or not isinstance(obj, dict) or "id" not in obj:
        raise InvalidWebhook("event without a type or object")
    return data


def _depth(value: Any) -> int:
    """How deeply ``value`` nests (iteratively: a deep value must not exhaust the stack)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            if level > MAX_JSON_DEPTH:
                return level  # no need to walk the rest
            stack.extend((child, level + 1) for child in item)
    return deepest
