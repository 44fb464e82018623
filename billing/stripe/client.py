"""The one place that calls the Stripe API: the official SDK's async client, built in ``bot/``.

Stripe's own errors become :class:`~core.errors.PaymentUnavailable` with a message fit for chat;
their text (which may quote a masked key) goes to the log only.

The SDK retries connection errors, timeouts, 409s and 5xx answers itself, with the idempotency
key of the first attempt; so a request whose answer was lost is answered by the session it
created, never by a second one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe

from billing.stripe.subscription_state import SubscriptionState, subscription_state
from core.errors import PaymentUnavailable
from core.i18n import N_

log = logging.getLogger(__name__)

MAX_NETWORK_RETRIES = 2

# Translated where the refusal is shown (SwitchboardError.localized looks them up).
_TRY_AGAIN = N_(
    "The payment service is not responding right now. Please try again in a few minutes."
)
_NOT_AVAILABLE = N_(
    "Payments are not available right now because of a configuration problem. "
    "Please tell your administrator."
)


@dataclass(frozen=True, slots=True)
class CreatedSession:
    id: str
    url: str
    expires_at: datetime | None


def build_stripe_client(
    secret_key: str, *, api_base: str | None, timeout_seconds: float
) -> tuple[stripe.StripeClient, stripe.AIOHTTPClient]:
    """A client on aiohttp (already a dependency) with an explicit timeout and retries; the
    HTTP client is returned too, to be closed at shutdown."""
    import aiohttp

    http = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=timeout_seconds))
    client = stripe.StripeClient(
        secret_key,
        base_addresses={"api": api_base} if api_base else None,
        http_client=http,
        max_network_retries=MAX_NETWORK_RETRIES,
    )
    return client, http


class StripeCheckout:
    """Checkout Sessions through a :class:`stripe.StripeClient` (its ``*_async`` methods)."""

    def __init__(self, client: stripe.StripeClient, http: stripe.AIOHTTPClient) -> None:
        self._client = client
        self._http = http

    async def create_session(
        self, params: dict[str, Any], *, idempotency_key: str
    ) -> CreatedSession:
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _unavailable(exc) from None
        if not session.url:
            raise PaymentUnavailable("Stripe returned a session without a URL")
        expires = getattr(session, "expires_at", None)
        return CreatedSession(
            id=session.id,
            url=session.url,
            expires_at=datetime.fromtimestamp(expires, UTC) if isinstance(expires, int) else None,
        )

    async def expire_session(self, session_id: str) -> str:
        """Close an open Checkout Session so it can no longer be paid; its status afterwards:
        ``expired``, or ``complete`` when it was paid first (the webhook then says so)."""
        sessions = self._client.v1.checkout.sessions
        try:
            try:
                session = await sessions.expire_async(session_id)
            except stripe.InvalidRequestError:  # not open any more: see what it is
                session = await sessions.retrieve_async(session_id)
        except stripe.StripeError as exc:
            raise _unavailable(exc) from None
        return str(session.status)

    async def cancel_subscription(self, subscription_id: str, *, idempotency_key: str) -> None:
        """End ``subscription_id`` now (no further charges; nothing prorated back)."""
        try:
            await self._client.v1.subscriptions.cancel_async(
                subscription_id, options={"idempotency_key": idempotency_key}
            )
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404:
                raise _unavailable(exc) from None
            # Stripe answers a cancelled subscription as missing: it is ended, as wanted.
            log.info("Stripe subscription %s already ended", subscription_id)
        except stripe.StripeError as exc:
            raise _unavailable(exc) from None

    async def refund(
        self, payment_intent: str, *, idempotency_key: str, metadata: dict[str, str]
    ) -> str:
        """Refund all that is left of ``payment_intent``; the refund's id."""
        try:
            refund = await self._client.v1.refunds.create_async(
                {"payment_intent": payment_intent, "metadata": metadata},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.InvalidRequestError as exc:
            if exc.code != "charge_already_refunded":
                raise _unavailable(exc) from None
            return "already refunded"  # by hand in the dashboard, say: nothing left to give
        except stripe.StripeError as exc:
            raise _unavailable(exc) from None
        return str(refund.id)

    async def invoice_payment_intent(self, invoice_id: str) -> str | None:
        """The payment intent that paid ``invoice_id``, None if none did (a zero invoice).

        Since API 2025-03-31 an invoice carries no ``payment_intent``, and its ``payments`` are
        includable (never in an event's payload): ask the Invoice Payments API.
        """
        try:
            listing = await self._client.v1.invoice_payments.list_async(
                {"invoice": invoice_id, "status": "paid"}
            )
        except stripe.StripeError as exc:
            raise _unavailable(exc) from None
        for item in listing.data:
            intent = getattr(item.payment, "payment_intent", None)
            found = intent if isinstance(intent, str) else getattr(intent, "id", None)
            if isinstance(found, str) and found:
                return found
        return None

    async def set_cancel_at_period_end(
        self, subscription_id: str, cancel: bool, *, idempotency_key: str
    ) -> SubscriptionState:
        """Cancel ``subscription_id`` at the end of its paid period (or undo that)."""
        try:
            subscription = await self._client.v1.subscriptions.update_async(
                subscription_id,
                {"cancel_at_period_end": cancel},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _unavailable(exc) from None
        return subscription_state(subscription.to_dict())

    async def subscription(self, subscription_id: str) -> SubscriptionState:
        """The subscription as Stripe has it now (events may arrive late or out of order)."""
        try:
            subscription = await self._client.v1.subscriptions.retrieve_async(subscription_id)
        except stripe.StripeError as exc:
            raise _unavailable(exc) from None
        return subscription_state(subscription.to_dict())

    async def portal_url(self, customer_id: str, return_url: str) -> str:
        """A Stripe Billing Portal session for the customer: change the card, see invoices."""
        try:
            portal = await self._client.v1.billing_portal.sessions.create_async(
                {"customer": customer_id, "return_url": return_url}
            )
        except stripe.StripeError as exc:
            raise _unavailable(exc) from None
        return str(portal.url)

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


def _unavailable(exc: stripe.StripeError) -> PaymentUnavailable:
    """Classify without repeating Stripe's message (it may quote a masked key) to the chat."""
    kind = type(exc).__name__
    reason = f"Stripe {kind} (HTTP {exc.http_status or '-'}, code {exc.code or '-'})"
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError | stripe.APIError):
        log.warning("Stripe unavailable: %s", reason)
        return PaymentUnavailable(reason, user_message=_TRY_AGAIN)
    # Authentication, permission, invalid request: a configuration problem for the operator.
    # Only an invalid request's message is logged: an authentication error's quotes the key.
    detail = exc.user_message if isinstance(exc, stripe.InvalidRequestError) else None
    log.error("Stripe refused a checkout request: %s%s", reason, f": {detail}" if detail else "")
    return PaymentUnavailable(reason, user_message=_NOT_AVAILABLE)
