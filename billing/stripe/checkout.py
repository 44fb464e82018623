"""Payment links: a ``payments`` row first, then a Stripe Checkout Session for it.

The row is committed before Stripe is called, so every session we create has a row to find when
its webhook arrives (by session id, or by the row id in its metadata if we never learnt the
session id because the answer was lost). The idempotency key sent with the create call is
derived from the row, so retries of that call make one session, never two.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from billing.amounts import price_label, to_minor
from billing.notices import reader_translator
from billing.stripe.subscription_state import SubscriptionState
from core.clock import Clock
from core.envelope import ChatAddress
from core.errors import PaymentUnavailable
from core.i18n import Translators, lazy
from storage.db import Sessions
from storage.models import Pack, Payment, Plan, Subscription, Tenant
from storage.repositories.catalog import PackRepository
from storage.repositories.payments import PaymentRepository
from storage.states import PaymentKind

if TYPE_CHECKING:  # the SDK is imported only when Stripe is configured
    from billing.stripe.client import StripeCheckout


#: An unpaid pack link asked for again by the same chat within this time is given again rather
#: than a new Checkout Session opened (``/buy`` repeated, the out-of-tokens refusal).
LINK_REUSE = timedelta(hours=1)

#: The metadata key naming what a session buys.
_METADATA_KEY: dict[PaymentKind, str] = {
    "pack": "pack",
    "subscription": "plan",
    "invoice": "invoice",
}


@dataclass(frozen=True, slots=True)
class ReturnUrls:
    """Where Stripe sends the customer back to: our small ``/paid`` page."""

    success: str
    cancel: str
    #: Where the Billing Portal's "return" link goes.
    portal: str = ""

    @classmethod
    def under(cls, public_base_url: str) -> ReturnUrls:
        base = public_base_url.rstrip("/")
        # {CHECKOUT_SESSION_ID} is filled in by Stripe.
        return cls(
            f"{base}/paid?session_id={{CHECKOUT_SESSION_ID}}",
            f"{base}/paid?cancelled=1",
            f"{base}/paid?portal=1",
        )


@dataclass(frozen=True, slots=True)
class CheckoutLink:
    payment_id: int
    #: ``pack``, ``subscription`` or ``invoice`` (a renewal is charged by Stripe: no link).
    kind: PaymentKind
    item: str
    name: str
    tokens: int
    amount_micros: int
    currency: str
    url: str
    session_id: str

    @property
    def label(self) -> str:
        """``Pro: 2,000,000 tokens for 15.00 EUR`` (a button's text)."""
        price = price_label(self.amount_micros, self.currency)
        per = "/month" if self.kind == "subscription" else ""
        return f"{self.name}: {self.tokens:,} tokens for {price}{per}"


class CheckoutService:
    def __init__(
        self,
        sessions: Sessions,
        stripe: StripeCheckout,
        urls: ReturnUrls,
        *,
        clock: Clock,
        translators: Translators | None = None,
    ) -> None:
        self._sessions = sessions
        self._stripe = stripe
        self._urls = urls
        self._clock = clock
        #: What Stripe's page names is in the asker's language (English without catalogs).
        self._translators = translators

    async def pack_link(
        self, tenant: Tenant, pack: Pack, *, reply_to: ChatAddress | None, actor: str
    ) -> CheckoutLink:
        """A one-off Checkout Session (mode ``payment``) for ``pack``."""
        payment = Payment(
            tenant_id=tenant.id,
            kind="pack",
            item=pack.slug,
            tokens=pack.tokens,
            amount_micros=pack.price_micros,
            currency=pack.currency,
        )
        return await self._create(tenant, payment, pack.name, reply_to=reply_to, actor=actor)

    async def pack_links(
        self,
        tenant: Tenant,
        *,
        reply_to: ChatAddress | None,
        actor: str,
        reuse_within: timedelta | None = None,
    ) -> list[CheckoutLink]:
        """A link for every active pack, cheapest first; with ``reuse_within``, a recent unpaid
        link of the same chat is given again instead of a new one."""
        async with self._sessions() as session:
            packs = await PackRepository(session).list(active_only=True)
        links: list[CheckoutLink] = []
        for pack in packs:
            link = None
            if reuse_within is not None:
                link = await self.recent_pack_link(tenant.id, pack, reply_to, reuse_within)
            links.append(link or await self.pack_link(tenant, pack, reply_to=reply_to, actor=actor))
        return links

    async def subscription_link(
        self, tenant: Tenant, plan: Plan, *, reply_to: ChatAddress | None, actor: str
    ) -> CheckoutLink:
        """A Checkout Session in mode ``subscription``: ``plan``'s price every month."""
        payment = Payment(
            tenant_id=tenant.id,
            kind="subscription",
            item=plan.slug,
            tokens=plan.tokens_included,
            amount_micros=plan.price_micros,
            currency=plan.currency,
        )
        return await self._create(tenant, payment, plan.name, reply_to=reply_to, actor=actor)

    async def invoice_link(
        self, tenant: Tenant, number: str, amount_micros: int, currency: str, *, actor: str
    ) -> CheckoutLink:
        """A Checkout Session (mode ``payment``) for an invoice's total; paying it marks the
        invoice paid (see :mod:`billing.stripe.checkout_events`)."""
        payment = Payment(
            tenant_id=tenant.id,
            kind="invoice",
            item=number,
            tokens=0,
            amount_micros=amount_micros,
            currency=currency,
        )
        return await self._create(tenant, payment, f"Invoice {number}", reply_to=None, actor=actor)

    async def recent_pack_link(
        self, tenant_id: int, pack: Pack, reply_to: ChatAddress | None, within: timedelta
    ) -> CheckoutLink | None:
        """An unpaid link for the same pack, price and chat made in the last ``within``.

        The out-of-tokens refusal reuses it rather than opening new sessions on every message.
        """
        since = self._clock() - within
        wanted = reply_to.to_json() if reply_to else None
        async with self._sessions() as session:
            candidates = await PaymentRepository(session).list(
                tenant_id=tenant_id, status="pending", kind="pack", item=pack.slug, since=since
            )
        for payment in candidates:
            if (
                payment.url
                and payment.stripe_session_id
                and payment.reply_to == wanted
                and (payment.amount_micros, payment.currency) == (pack.price_micros, pack.currency)
                and payment.tokens == pack.tokens
            ):
                return _link(payment, pack.name, payment.url, payment.stripe_session_id)
        return None

    async def cancel_at_period_end(
        self, subscription: Subscription, *, cancel: bool = True
    ) -> SubscriptionState:
        """Ask Stripe to end ``subscription`` when its paid period ends (or not to)."""
        # The same request retried is one change; a later one (after the portal undid it, say)
        # must reach Stripe, so the key moves with our copy's last update.
        version = int(subscription.updated_at.timestamp() * 1000)
        key = f"switchboard-cancel-{subscription.stripe_subscription_id}-{int(cancel)}-{version}"
        return await self._stripe.set_cancel_at_period_end(
            subscription.stripe_subscription_id, cancel, idempotency_key=key
        )

    async def subscription_state(self, subscription: Subscription) -> SubscriptionState:
        return await self._stripe.subscription(subscription.stripe_subscription_id)

    async def portal_url(self, subscription: Subscription) -> str:
        """A Billing Portal link for the subscription's customer (card, invoices, plan)."""
        if not subscription.stripe_customer_id:
            raise PaymentUnavailable(
                "subscription has no Stripe customer",
                user_message=lazy("This subscription has no Stripe customer to manage yet."),
            )
        return await self._stripe.portal_url(
            subscription.stripe_customer_id, self._urls.portal or self._urls.cancel
        )

    async def refund(self, payment: Payment, *, actor: str) -> str:
        """Refund what is left of a paid payment through Stripe (``/payments refund``); the
        refund's id. The ledger follows Stripe's ``charge.refunded``, as for any refund."""
        if payment.stripe_payment_intent is None:
            raise PaymentUnavailable(
                f"payment {payment.id} has no Stripe payment intent",
                user_message=lazy("Payment #{id} has no Stripe charge to refund.", id=payment.id),
            )
        return await self._stripe.refund(
            payment.stripe_payment_intent,
            idempotency_key=f"switchboard-refund-{payment.id}",
            metadata={"payment": str(payment.id), "refunded_by": actor},
        )

    async def expire(self, session_id: str) -> str:
        """Close an open Checkout Session (an invoice cancelled or paid by hand); its status
        afterwards, ``expired`` or ``complete``. :class:`PaymentUnavailable` if Stripe failed."""
        return await self._stripe.expire_session(session_id)

    async def _create(
        self,
        tenant: Tenant,
        payment: Payment,
        name: str,
        *,
        reply_to: ChatAddress | None,
        actor: str,
    ) -> CheckoutLink:
        now = self._clock()
        payment.status = "pending"
        payment.reply_to = reply_to.to_json() if reply_to else None
        payment.requested_by = actor
        payment.created_at = now
        # Random part: row ids restart with a fresh database, Stripe keys live for a day.
        nonce = secrets.token_hex(8)
        payment.idempotency_key = f"switchboard-new-{nonce}"
        async with self._sessions.begin() as session:
            await PaymentRepository(session).add(payment)
            payment.idempotency_key = f"switchboard-payment-{payment.id}-{nonce}"
        product = await self._product(tenant, payment, name, reply_to)
        try:
            created = await self._stripe.create_session(
                self._params(tenant, payment, product), idempotency_key=payment.idempotency_key
            )
        except Exception as exc:
            reason = exc.reason if isinstance(exc, PaymentUnavailable) else type(exc).__name__
            async with self._sessions.begin() as session:
                await PaymentRepository(session).fail(payment.id, reason, self._clock())
            raise
        async with self._sessions.begin() as session:
            await PaymentRepository(session).attach_session(payment.id, created.id, created.url)
        return _link(payment, name, created.url, created.id)

    async def _product(
        self, tenant: Tenant, payment: Payment, name: str, reply_to: ChatAddress | None
    ) -> str:
        """The line Stripe's page shows, in the language of whoever asked: their ``/language``,
        else the organisation's (``Pro: 2,000,000 tokens``, ``Invoice INV-…``)."""
        async with self._sessions() as session:
            t = await reader_translator(session, self._translators, reply_to, tenant_id=tenant.id)
        if payment.kind == "invoice":
            return t("Invoice {number}", number=payment.item)
        return t("{name}: {tokens} tokens", name=name, tokens=t.number(payment.tokens))

    def _params(self, tenant: Tenant, payment: Payment, product: str) -> dict[str, Any]:
        metadata = {
            "tenant": tenant.slug,
            "payment": str(payment.id),
            _METADATA_KEY.get(payment.kind, "plan"): payment.item,
            "tokens": str(payment.tokens),
        }
        price_data: dict[str, Any] = {
            "currency": payment.currency.lower(),
            "unit_amount": to_minor(payment.amount_micros, payment.currency),
            "product_data": {"name": product},
        }
        params: dict[str, Any] = {
            "client_reference_id": tenant.slug,
            "line_items": [{"quantity": 1, "price_data": price_data}],
            "metadata": metadata,
            "success_url": self._urls.success,
            "cancel_url": self._urls.cancel,
        }
        if tenant.email:
            params["customer_email"] = tenant.email
        if payment.kind == "subscription":
            price_data["recurring"] = {"interval": "month"}
            params["mode"] = "subscription"
            # Copied by Stripe onto the subscription and its invoices: an invoice.paid that
            # arrives before checkout.session.completed still names its tenant and plan.
            params["subscription_data"] = {"metadata": metadata}
        else:
            params["mode"] = "payment"
            # Copied onto the payment intent and its charge, for refunds.
            params["payment_intent_data"] = {"metadata": metadata}
        return params


def _link(payment: Payment, name: str, url: str, session_id: str) -> CheckoutLink:
    return CheckoutLink(
        payment_id=payment.id,
        kind=payment.kind,
        item=payment.item,
        name=name,
        tokens=payment.tokens,
        amount_micros=payment.amount_micros,
        currency=payment.currency,
        url=url,
        session_id=session_id,
    )
