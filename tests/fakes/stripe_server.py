"""A local fake Stripe API speaking the wire protocol the official SDK uses.

``FakeStripeServer`` is an aiohttp server on ``127.0.0.1`` (port 0); point the SDK at it with
``StripeClient(key, base_addresses={"api": server.base_url})`` (``STRIPE_API_BASE``).

Protocol, as Stripe speaks it
    Requests carry ``Authorization: Bearer <secret key>`` (else 401) and, for POSTs, a
    form-encoded body in bracket notation (``line_items[0][price_data][currency]=eur``), decoded
    here into nested dicts and lists. ``Idempotency-Key`` is honoured: the same key with the same
    parameters replays the first answer (``Idempotent-Replayed: true``); with other parameters it
    is a 400 ``idempotency_error``. Errors are Stripe-shaped: ``{"error": {"type", "message",
    "code", "param"}}`` with the matching status.

Endpoints
    ``POST /v1/checkout/sessions`` (validated: mode, line items with ``price_data``, recurring
    prices only in subscription mode), ``GET /v1/checkout/sessions/<id>``,
    ``POST /v1/checkout/sessions/<id>/expire``, ``GET /v1/account`` (the key's account, for
    ``switchboard doctor``), ``DELETE /v1/subscriptions/<id>`` (cancel now), ``GET`` and
    ``POST /v1/subscriptions/<id>`` (retrieve; ``cancel_at_period_end``; the billing period is
    on the items, as since API 2025-03-31), ``POST /v1/billing_portal/sessions``,
    ``POST /v1/refunds`` (by ``payment_intent`` or ``charge``; at most what is left to refund),
    ``GET /v1/invoice_payments?invoice=…`` (how an invoice was paid: since API 2025-03-31 an
    invoice no longer carries ``payment_intent``, and its ``payments`` list is includable, so
    never in a webhook's payload). Every paid session and subscription invoice has a payment
    intent and a charge (``charges``), which refunds move. Session URLs look like Stripe's
    (``https://checkout.stripe.com/c/pay/cs_test_…``); nobody opens them: tests "pay" with the
    controls below.

Failures on demand
    ``fail_next(status=500, count=1)`` answers before doing anything (the SDK retries 5xx);
    ``hang_next(seconds)`` does the work, then answers only after ``seconds`` (a lost answer:
    the client times out and retries with the same idempotency key).

Webhooks
    Builders return the events Stripe would send, in its current shapes, and update the fake's
    state: :meth:`completed`, :meth:`async_succeeded`, :meth:`async_failed`, :meth:`expired`,
    :meth:`invoice_paid`, :meth:`invoice_failed`, :meth:`subscription_deleted`,
    :meth:`refunded` (a session's charge), :meth:`charge_refunded` (any charge; also the event
    of a refund made through the API). :meth:`deliver` POSTs an event to every URL in
    ``webhook_urls`` at once, signed like Stripe
    (``Stripe-Signature: t=<ts>,v1=<HMAC-SHA256(secret, "<ts>.<body>")>``), and returns the HTTP
    statuses; ``secret``, ``timestamp``, ``tamper`` forge bad ones.
    :meth:`pay` is "the customer paid": ``completed`` (and, for a subscription, the first
    ``invoice.paid``) delivered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

JSON = dict[str, Any]
API_KEY = "sk_test_fake_4eC39HqLyjWDarjtT1zdp7dc"
WEBHOOK_SECRET = "whsec_test_fake_secret"
API_VERSION = "2026-10-28.endive"
#: A subscription's billing period (a month, near enough).
PERIOD_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class StripeRequest:
    method: str
    path: str
    params: JSON
    idempotency_key: str | None
    status: int
    replayed: bool = False


@dataclass(slots=True)
class _Failure:
    status: int
    count: int
    hang: float = 0.0


@dataclass(slots=True)
class FakeSession:
    data: JSON
    #: What the create call carried beyond the session object itself.
    subscription_metadata: dict[str, str] = field(default_factory=dict)
    payment_intent_metadata: dict[str, str] = field(default_factory=dict)
    charge: JSON | None = None


class StripeApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: JSON = {"error": {"type": type_, "message": message}}
        if code:
            self.body["error"]["code"] = code
        if param:
            self.body["error"]["param"] = param


class FakeStripeServer:
    def __init__(self, *, api_key: str = API_KEY, webhook_secret: str = WEBHOOK_SECRET) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.requests: list[StripeRequest] = []
        self.sessions: dict[str, FakeSession] = {}
        self.subscriptions: dict[str, JSON] = {}
        #: Billing Portal sessions asked for (their parameters).
        self.portal_sessions: list[JSON] = []
        self.charges: dict[str, JSON] = {}
        self.refunds: list[JSON] = []
        #: Invoice id → its ``invoice_payment`` object (one paid attempt per invoice here).
        self.invoice_payments: dict[str, JSON] = {}
        self.webhook_urls: list[str] = []
        self.deliveries: list[tuple[str, str, int]] = []  # (event id, url, status)
        self._idempotent: dict[str, tuple[JSON, int, JSON]] = {}
        self._failures: list[_Failure] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/checkout/sessions", self._create_session)
        app.router.add_get("/v1/checkout/sessions/{id}", self._retrieve_session)
        app.router.add_post("/v1/checkout/sessions/{id}/expire", self._expire_session)
        app.router.add_get("/v1/account", self._account)
        app.router.add_delete("/v1/subscriptions/{id}", self._cancel_subscription)
        app.router.add_get("/v1/subscriptions/{id}", self._retrieve_subscription)
        app.router.add_post("/v1/subscriptions/{id}", self._update_subscription)
        app.router.add_post("/v1/billing_portal/sessions", self._create_portal_session)
        app.router.add_post("/v1/refunds", self._create_refund)
        app.router.add_get("/v1/invoice_payments", self._list_invoice_payments)
        app.router.add_route("*", "/v1/{rest:.*}", self._unknown)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._client = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeStripeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- failures on demand --------------------------------------------------------------------

    def fail_next(self, status: int = 500, *, count: int = 1) -> None:
        """The next ``count`` API requests fail with ``status`` before doing anything."""
        self._failures.append(_Failure(status, count))

    def hang_next(self, seconds: float, *, count: int = 1) -> None:
        """The next ``count`` requests are carried out, but answered only after ``seconds``."""
        self._failures.append(_Failure(200, count, hang=seconds))

    def _take_failure(self) -> _Failure | None:
        if not self._failures:
            return None
        failure = self._failures[0]
        failure.count -= 1
        if failure.count <= 0:
            self._failures.pop(0)
        return failure

    # -- inspection ----------------------------------------------------------------------------

    def created(self) -> list[StripeRequest]:
        """Session create requests that were carried out (not replays, not failures)."""
        return [
            r
            for r in self.requests
            if r.method == "POST"
            and r.path == "/v1/checkout/sessions"
            and r.status == 200
            and not r.replayed
        ]

    def session_for_url(self, url: str) -> JSON:
        for session in self.sessions.values():
            if session.data["url"] == url:
                return session.data
        raise KeyError(url)

    # -- API -----------------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}_test_{next(self._ids):04d}{secrets.token_hex(6)}"

    async def _handle(self, request: web.Request, action: Any) -> web.Response:
        params = _decode_form(await request.text()) if request.method == "POST" else {}
        params.update(_decode_form(request.query_string))
        key = request.headers.get("Idempotency-Key")
        headers = {"Request-Id": self._id("req")}
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_key}":
            given = auth.removeprefix("Bearer ")
            error = StripeApiError(401, f"Invalid API Key provided: {_mask(given)}")
            return self._answer(request, params, key, 401, error.body, headers)
        failure = self._take_failure()
        if failure is not None and failure.status >= 400:
            error = StripeApiError(failure.status, "An unknown error occurred", type_="api_error")
            return self._answer(request, params, key, failure.status, error.body, headers)
        cache_key = f"{request.method} {request.path} {key}" if key else None
        if cache_key is not None and cache_key in self._idempotent:
            first_params, status, body = self._idempotent[cache_key]
            if first_params != params:
                error = StripeApiError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request.",
                    type_="idempotency_error",
                )
                return self._answer(request, params, key, 400, error.body, headers)
            headers["Idempotent-Replayed"] = "true"
            return self._answer(request, params, key, status, body, headers, replayed=True)
        try:
            status, body = 200, action(request, params)
        except StripeApiError as exc:
            status, body = exc.status, exc.body
        if cache_key is not None:
            self._idempotent[cache_key] = (params, status, body)
        response = self._answer(request, params, key, status, body, headers)
        if failure is not None and failure.hang:
            await asyncio.sleep(failure.hang)  # done and recorded, but the answer comes late
        return response

    def _answer(
        self,
        request: web.Request,
        params: JSON,
        key: str | None,
        status: int,
        body: JSON,
        headers: dict[str, str],
        *,
        replayed: bool = False,
    ) -> web.Response:
        self.requests.append(
            StripeRequest(request.method, request.path, params, key, status, replayed)
        )
        return web.json_response(body, status=status, headers=headers)

    async def _create_session(self, request: web.Request) -> web.Response:
        return await self._handle(request, self._new_session)

    async def _retrieve_session(self, request: web.Request) -> web.Response:
        return await self._handle(request, lambda r, _p: self._session(r.match_info["id"]).data)

    async def _expire_session(self, request: web.Request) -> web.Response:
        def expire(r: web.Request, _params: JSON) -> JSON:
            session = self._session(r.match_info["id"]).data
            if session["status"] != "open":
                raise StripeApiError(400, f"Only open sessions can be expired ({session['id']}).")
            session["status"] = "expired"
            return session

        return await self._handle(request, expire)

    async def _account(self, request: web.Request) -> web.Response:
        def account(_r: web.Request, _params: JSON) -> JSON:
            return {
                "id": "acct_fake0000000001",
                "object": "account",
                "business_profile": {"name": "Switchboard Test"},
                "charges_enabled": True,
                "country": "FR",
                "default_currency": "eur",
                "details_submitted": True,
                "payouts_enabled": True,
                "type": "standard",
            }

        return await self._handle(request, account)

    def _live_subscription(self, subscription_id: str) -> JSON:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            raise StripeApiError(
                404, f"No such subscription: '{subscription_id}'", code="resource_missing"
            )
        return subscription

    async def _retrieve_subscription(self, request: web.Request) -> web.Response:
        def retrieve(r: web.Request, _params: JSON) -> JSON:
            return _public_subscription(self._live_subscription(r.match_info["id"]))

        return await self._handle(request, retrieve)

    async def _update_subscription(self, request: web.Request) -> web.Response:
        def update(r: web.Request, params: JSON) -> JSON:
            subscription = self._live_subscription(r.match_info["id"])
            if subscription["status"] == "canceled":
                raise StripeApiError(
                    400,
                    "A canceled subscription can only update its cancellation_details and "
                    "metadata.",
                )
            if "cancel_at_period_end" in params:
                value = params["cancel_at_period_end"]
                if value not in ("true", "false"):
                    raise StripeApiError(
                        400, f"Invalid boolean: {value}", param="cancel_at_period_end"
                    )
                subscription["cancel_at_period_end"] = value == "true"
            return _public_subscription(subscription)

        return await self._handle(request, update)

    async def _create_portal_session(self, request: web.Request) -> web.Response:
        def create(_r: web.Request, params: JSON) -> JSON:
            customer = params.get("customer")
            if not customer:
                raise StripeApiError(400, "Missing required param: customer.", param="customer")
            if customer not in {s["customer"] for s in self.subscriptions.values()}:
                raise StripeApiError(
                    400, f"No such customer: '{customer}'", param="customer",
                    code="resource_missing",
                )  # fmt: skip
            portal_id = self._id("bps")
            self.portal_sessions.append(params)
            return {
                "id": portal_id,
                "object": "billing_portal.session",
                "customer": customer,
                "return_url": params.get("return_url"),
                "url": f"https://billing.stripe.com/p/session/{portal_id}",
                "livemode": False,
            }

        return await self._handle(request, create)

    async def _cancel_subscription(self, request: web.Request) -> web.Response:
        def cancel(r: web.Request, _params: JSON) -> JSON:
            subscription_id = r.match_info["id"]
            subscription = self.subscriptions.get(subscription_id)
            if subscription is None:
                raise StripeApiError(
                    404, f"No such subscription: '{subscription_id}'", code="resource_missing"
                )
            if subscription["status"] == "canceled":
                raise StripeApiError(
                    404,
                    f"No such subscription: '{subscription_id}'",  # Stripe's answer once canceled
                    code="resource_missing",
                )
            subscription["status"] = "canceled"
            subscription["canceled_at"] = int(time.time())
            return _public_subscription(subscription)

        return await self._handle(request, cancel)

    async def _create_refund(self, request: web.Request) -> web.Response:
        return await self._handle(request, self._new_refund)

    def _new_refund(self, _request: web.Request, params: JSON) -> JSON:
        charge = self._refundable_charge(params)
        left = charge["amount"] - charge["amount_refunded"]
        if left <= 0:
            raise StripeApiError(
                400,
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
            )
        amount = params.get("amount")
        if amount is None:
            amount = left
        elif not str(amount).isdigit() or int(amount) <= 0:
            raise StripeApiError(400, "Invalid positive integer", param="amount")
        amount = int(amount)
        if amount > left:
            raise StripeApiError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                param="amount",
                code="amount_too_large",
            )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        refund: JSON = {
            "id": self._id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "payment_intent": charge["payment_intent"],
            "currency": charge["currency"],
            "status": "succeeded",
            "reason": params.get("reason"),
            "metadata": params.get("metadata") or {},
            "created": int(time.time()),
        }
        self.refunds.append(refund)
        return refund

    def _refundable_charge(self, params: JSON) -> JSON:
        charge_id, intent = params.get("charge"), params.get("payment_intent")
        if not charge_id and not intent:
            raise StripeApiError(
                400, "One of `charge` or `payment_intent` is required.", code="parameter_missing"
            )
        for charge in self.charges.values():
            if charge["id"] == charge_id or (intent and charge["payment_intent"] == intent):
                return charge
        param = "charge" if charge_id else "payment_intent"
        missing = f"No such {param}: '{charge_id or intent}'"
        raise StripeApiError(404, missing, code="resource_missing", param=param)

    async def _list_invoice_payments(self, request: web.Request) -> web.Response:
        def listing(_r: web.Request, params: JSON) -> JSON:
            wanted_invoice = params.get("invoice")
            wanted_intent = (params.get("payment") or {}).get("payment_intent")
            wanted_status = params.get("status")
            found = [
                item
                for item in self.invoice_payments.values()
                if (not wanted_invoice or item["invoice"] == wanted_invoice)
                and (not wanted_intent or item["payment"]["payment_intent"] == wanted_intent)
                and (not wanted_status or item["status"] == wanted_status)
            ]
            return {
                "object": "list",
                "url": "/v1/invoice_payments",
                "has_more": False,
                "data": found,
            }

        return await self._handle(request, listing)

    async def _unknown(self, request: web.Request) -> web.Response:
        def missing(r: web.Request, _params: JSON) -> JSON:
            raise StripeApiError(404, f"Unrecognized request URL ({r.method}: {r.path}).")

        return await self._handle(request, missing)

    def _session(self, session_id: str) -> FakeSession:
        if session_id not in self.sessions:
            raise StripeApiError(
                404, f"No such checkout.session: '{session_id}'", code="resource_missing"
            )
        return self.sessions[session_id]

    def _new_session(self, _request: web.Request, params: JSON) -> JSON:
        mode = params.get("mode")
        if mode not in ("payment", "subscription", "setup"):
            raise StripeApiError(
                400, "Missing required param: mode.", code="parameter_missing", param="mode"
            )
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise StripeApiError(400, "line_items is required", param="line_items")
        total, currency = 0, None
        for index, item in enumerate(items):
            price = item.get("price_data") if isinstance(item, dict) else None
            where = f"line_items[{index}][price_data]"
            if not isinstance(price, dict):
                raise StripeApiError(400, f"Missing required param: {where}.", param=where)
            for name in ("currency", "unit_amount"):
                if not price.get(name):
                    raise StripeApiError(
                        400, f"Missing required param: {where}[{name}].", param=f"{where}[{name}]"
                    )
            if not str(price["unit_amount"]).isdigit():
                raise StripeApiError(400, "Invalid integer", param=f"{where}[unit_amount]")
            if not (price.get("product_data") or {}).get("name"):
                raise StripeApiError(400, "Missing product name", param=f"{where}[product_data]")
            recurring = price.get("recurring")
            if (mode == "subscription") != isinstance(recurring, dict):
                raise StripeApiError(
                    400,
                    "You must provide at least one recurring price in `subscription` mode"
                    if mode == "subscription"
                    else "You specified `payment` mode but passed a recurring price.",
                    param=f"{where}[recurring]",
                )
            currency = currency or price["currency"]
            total += int(price["unit_amount"]) * int(item.get("quantity") or 1)
        session_id = self._id("cs")
        now = int(time.time())
        data: JSON = {
            "id": session_id,
            "object": "checkout.session",
            "mode": mode,
            "status": "open",
            "payment_status": "unpaid",
            "amount_subtotal": total,
            "amount_total": total,
            "currency": currency,
            "client_reference_id": params.get("client_reference_id"),
            "customer": params.get("customer"),
            "customer_email": params.get("customer_email"),
            "metadata": params.get("metadata") or {},
            "payment_intent": None,
            "subscription": None,
            "invoice": None,
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "url": f"https://checkout.stripe.com/c/pay/{session_id}#fid{secrets.token_hex(8)}",
            "created": now,
            "expires_at": now + 24 * 3600,
            "livemode": False,
        }
        self.sessions[session_id] = FakeSession(
            data,
            subscription_metadata=(params.get("subscription_data") or {}).get("metadata") or {},
            payment_intent_metadata=(params.get("payment_intent_data") or {}).get("metadata") or {},
        )
        return data

    # -- what happens at Stripe, as events -----------------------------------------------------

    def event(self, type_: str, obj: JSON) -> JSON:
        return {
            "id": self._id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "type": type_,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": json.loads(json.dumps(obj))},
        }

    def completed(
        self,
        session_id: str,
        *,
        paid: bool = True,
        amount_total: int | None = None,
        currency: str | None = None,
    ) -> JSON:
        """The customer finished Checkout: paid by card, or (``paid=False``) by a bank debit
        still on its way."""
        fake = self._session(session_id)
        session = fake.data
        session["status"] = "complete"
        session["payment_status"] = "paid" if paid else "unpaid"
        if amount_total is not None:
            session["amount_total"] = amount_total
        if currency is not None:
            session["currency"] = currency
        if session["mode"] == "payment":
            session["payment_intent"] = session["payment_intent"] or self._id("pi")
            fake.charge = fake.charge or {
                "id": self._id("ch"),
                "object": "charge",
                "amount": session["amount_total"],
                "amount_captured": session["amount_total"],
                "amount_refunded": 0,
                "refunded": False,
                "currency": session["currency"],
                "payment_intent": session["payment_intent"],
                "metadata": dict(fake.payment_intent_metadata),
            }
            self.charges[fake.charge["id"]] = fake.charge
        elif session["subscription"] is None:
            customer = session["customer"] or self._id("cus")
            subscription_id = self._id("sub")
            session["customer"] = customer
            session["subscription"] = subscription_id
            session["invoice"] = self._id("in")
            self.subscriptions[subscription_id] = {
                "id": subscription_id,
                "object": "subscription",
                "customer": customer,
                "status": "active",
                "currency": session["currency"],
                "metadata": dict(fake.subscription_metadata),
                "amount": session["amount_total"],
                "first_invoice": session["invoice"],
                "attempts": 0,
                "cancel_at_period_end": False,
                # Since API 2025-03-31 the billing period is on the subscription's items.
                "items": {
                    "object": "list",
                    "data": [
                        {
                            "id": self._id("si"),
                            "object": "subscription_item",
                            "current_period_start": int(time.time()),
                            "current_period_end": int(time.time()) + PERIOD_SECONDS,
                        }
                    ],
                },
            }
            if paid:  # the first invoice was paid by the checkout
                self._pay_invoice(session["invoice"], session["amount_total"], session["currency"])
        return self.event("checkout.session.completed", session)

    def async_succeeded(self, session_id: str) -> JSON:
        session = self._session(session_id).data
        session["payment_status"] = "paid"
        return self.event("checkout.session.async_payment_succeeded", session)

    def async_failed(self, session_id: str) -> JSON:
        session = self._session(session_id).data
        session["payment_status"] = "unpaid"
        return self.event("checkout.session.async_payment_failed", session)

    def expired(self, session_id: str) -> JSON:
        session = self._session(session_id).data
        session["status"] = "expired"
        return self.event("checkout.session.expired", session)

    def _pay_invoice(self, invoice_id: str, amount: int, currency: str) -> JSON:
        """The payment intent and charge that paid ``invoice_id`` (made once)."""
        if invoice_id not in self.invoice_payments:
            intent = self._id("pi")
            charge: JSON = {
                "id": self._id("ch"),
                "object": "charge",
                "amount": amount,
                "amount_captured": amount,
                "amount_refunded": 0,
                "refunded": False,
                "currency": currency,
                "payment_intent": intent,
                "metadata": {},  # subscription metadata is not copied onto invoice charges
            }
            self.charges[charge["id"]] = charge
            self.invoice_payments[invoice_id] = {
                "id": self._id("inpay"),
                "object": "invoice_payment",
                "invoice": invoice_id,
                "amount_paid": amount,
                "amount_requested": amount,
                "currency": currency,
                "is_default": True,
                "status": "paid",
                "payment": {"type": "payment_intent", "payment_intent": intent},
            }
        return self.invoice_payments[invoice_id]

    def invoice_charge(self, invoice_id: str) -> JSON:
        """The charge that paid a subscription invoice."""
        intent = self.invoice_payments[invoice_id]["payment"]["payment_intent"]
        return next(c for c in self.charges.values() if c["payment_intent"] == intent)

    def _invoice(
        self,
        subscription_id: str,
        *,
        first: bool,
        paid: bool,
        amount_paid: int | None = None,
        currency: str | None = None,
        invoice_id: str | None = None,
    ) -> JSON:
        subscription = self.subscriptions[subscription_id]
        invoice_id = invoice_id or (subscription["first_invoice"] if first else self._id("in"))
        amount = subscription["amount"] if amount_paid is None else amount_paid
        currency = currency or subscription["currency"]
        if paid:
            self._pay_invoice(invoice_id, amount, currency)
        # No ``payment_intent`` (removed in 2025-03-31) and no ``payments`` (includable: only
        # on retrieval with ``expand``, never in an event).
        return {
            "id": invoice_id,
            "object": "invoice",
            "customer": subscription["customer"],
            "currency": currency,
            "amount_due": amount,
            "amount_paid": amount if paid else 0,
            "attempt_count": subscription["attempts"],
            "billing_reason": "subscription_create" if first else "subscription_cycle",
            "status": "paid" if paid else "open",
            "parent": {
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": subscription_id,
                    "metadata": subscription["metadata"],
                },
            },
        }

    def invoice_paid(
        self,
        subscription_id: str,
        *,
        first: bool = False,
        amount_paid: int | None = None,
        currency: str | None = None,
        invoice_id: str | None = None,
    ) -> JSON:
        """A period of the subscription paid: the first one, or a renewal (``invoice_id``
        repeats one; ``amount_paid``, ``currency`` make it other than the subscription's)."""
        self.subscriptions[subscription_id]["attempts"] = 1
        invoice = self._invoice(
            subscription_id,
            first=first,
            paid=True,
            amount_paid=amount_paid,
            currency=currency,
            invoice_id=invoice_id,
        )
        return self.event("invoice.paid", invoice)

    def invoice_failed(self, subscription_id: str) -> JSON:
        subscription = self.subscriptions[subscription_id]
        subscription["attempts"] += 1
        subscription["status"] = "past_due"
        invoice = self._invoice(subscription_id, first=False, paid=False)
        return self.event("invoice.payment_failed", invoice)

    def subscription_updated(self, subscription_id: str) -> JSON:
        """``customer.subscription.updated`` with the subscription as it is now (change it
        first through the API or by hand)."""
        subscription = self.subscriptions[subscription_id]
        return self.event("customer.subscription.updated", _public_subscription(subscription))

    def subscription_deleted(self, subscription_id: str) -> JSON:
        subscription = self.subscriptions[subscription_id]
        subscription["status"] = "canceled"
        return self.event("customer.subscription.deleted", _public_subscription(subscription))

    def refunded(self, session_id: str, amount: int | None = None) -> JSON:
        """``amount`` more (minor units; all that is left by default) refunded on the session's
        charge."""
        charge = self._session(session_id).charge
        assert charge is not None, "nothing paid to refund"
        return self.charge_refunded(charge["id"], amount)

    def charge_refunded(self, charge_id: str, amount: int | None = None) -> JSON:
        """``amount`` more refunded on a charge (0: the event of refunds already made, say
        through ``POST /v1/refunds``)."""
        charge = self.charges[charge_id]
        left = charge["amount"] - charge["amount_refunded"]
        charge["amount_refunded"] += left if amount is None else min(amount, left)
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        return self.event("charge.refunded", charge)

    # -- delivery ------------------------------------------------------------------------------

    def sign(self, body: str, *, secret: str | None = None, timestamp: int | None = None) -> str:
        ts = int(time.time()) if timestamp is None else timestamp
        key = (secret or self.webhook_secret).encode()
        digest = hmac.new(key, f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
        return f"t={ts},v1={digest}"

    async def deliver(
        self,
        event: JSON,
        *,
        urls: list[str] | None = None,
        secret: str | None = None,
        timestamp: int | None = None,
        tamper: bool = False,
        signature: str | None = None,
    ) -> list[int]:
        """POST ``event`` to every webhook URL at once; the HTTP statuses, in URL order."""
        assert self._client is not None
        body = json.dumps(event)
        header = (
            signature
            if signature is not None
            else self.sign(body, secret=secret, timestamp=timestamp)
        )
        if tamper:  # signed, then changed on the way
            body = body.replace('"livemode": false', '"livemode": true', 1)
        targets = urls or self.webhook_urls
        assert targets, "no webhook URL to deliver to"

        async def post(url: str) -> int:
            assert self._client is not None
            headers = {"Content-Type": "application/json; charset=utf-8"}
            if header:
                headers["Stripe-Signature"] = header
            async with self._client.post(url, data=body.encode(), headers=headers) as resp:
                await resp.read()
                self.deliveries.append((event["id"], url, resp.status))
                return resp.status

        return list(await asyncio.gather(*(post(url) for url in targets)))

    async def pay(self, session_id: str) -> list[int]:
        """The customer paid: ``checkout.session.completed``, and for a subscription its first
        ``invoice.paid``."""
        statuses = await self.deliver(self.completed(session_id))
        subscription = self._session(session_id).data["subscription"]
        if subscription is not None:
            statuses += await self.deliver(self.invoice_paid(subscription, first=True))
        return statuses


def _public_subscription(subscription: JSON) -> JSON:
    """The subscription as the API shows it (without the fake's bookkeeping)."""
    return {k: v for k, v in subscription.items() if k not in ("first_invoice", "attempts")}


def _mask(key: str) -> str:
    return f"{key[:8]}{'*' * 12}{key[-4:]}" if len(key) > 12 else "****"


def _decode_form(body: str) -> JSON:
    """``a[b][0][c]=v`` pairs into nested dicts, lists where every key is an index."""
    root: JSON = {}
    for raw_key, value in urllib.parse.parse_qsl(body, keep_blank_values=True):
        head, _, rest = raw_key.partition("[")
        path = [head] + ([p.rstrip("]") for p in rest.split("[")] if rest else [])
        node = root
        for step in path[:-1]:
            node = node.setdefault(step, {})
        node[path[-1]] = value
    return _listify(root)  # type: ignore[no-any-return]


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items
