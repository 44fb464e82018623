"""``/buy`` and ``/subscribe`` paid in Stars: a ``payments`` row first, then the invoice.

The row is committed before Telegram is asked, and its id is the invoice's payload, so every
pre-checkout query and payment names a row we have. A pack is a ``sendInvoice`` into the chat
that asked; a plan is a ``createInvoiceLink`` with Telegram's 30-day ``subscription_period``
(Telegram renews it and sends each renewal as a ``successful_payment`` with ``is_recurring``).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from billing.notices import reader_translator
from billing.stars.amounts import STARS_CURRENCY, STARS_PROVIDER, stars_label, stars_to_micros
from billing.stars.api import InvoiceSpec, StarsApi, StarsApiError
from billing.stars.payload import payload_of
from core.clock import Clock
from core.envelope import ChatAddress
from core.errors import PaymentUnavailable
from core.i18n import N_, Translator, Translators, lazy
from storage.db import Sessions
from storage.models import Pack, Payment, Plan, Tenant
from storage.repositories.payments import PaymentRepository

T = TypeVar("T")

#: Telegram's limits on an invoice's title and description (Bot API, sendInvoice).
TITLE_LIMIT = 32
DESCRIPTION_LIMIT = 255

#: Why a pack or plan cannot be bought in Stars (translated where the refusal is shown).
_NO_PRICE = {
    "pack": N_(
        "The pack {slug} has no price in Telegram Stars yet. Please ask your administrator."
    ),
    "plan": N_(
        "The plan {slug} has no price in Telegram Stars yet. Please ask your administrator."
    ),
}


@dataclass(frozen=True, slots=True)
class StarsInvoice:
    payment_id: int
    kind: str
    item: str
    name: str
    tokens: int
    stars: int
    #: The subscription link (a plan); "" for a pack, whose invoice is a message in the chat.
    url: str = ""

    @property
    def label(self) -> str:
        per = "/month" if self.kind == "subscription" else ""
        return f"{self.name}: {self.tokens:,} tokens for {stars_label(self.stars)}{per}"


class NotForStars(PaymentUnavailable):
    """The pack or plan has no Stars price."""


class StarsInvoices:
    def __init__(
        self,
        sessions: Sessions,
        api: StarsApi,
        *,
        clock: Clock,
        translators: Translators | None = None,
    ) -> None:
        self._sessions = sessions
        self._api = api
        self._clock = clock
        #: The invoice's texts are in the asker's language (English without catalogs).
        self._translators = translators

    async def pack_invoice(
        self, tenant: Tenant, pack: Pack, *, reply_to: ChatAddress, actor: str
    ) -> StarsInvoice:
        """Send a Stars invoice for ``pack`` into the chat at ``reply_to``."""
        stars = _price(pack.stars, "pack", pack.slug)
        payment = await self._row(tenant, "pack", pack.slug, pack.tokens, stars, reply_to, actor)
        t = await self._reader(reply_to, tenant)
        description = t(
            "{tokens} tokens for {organisation}",
            tokens=t.number(pack.tokens),
            organisation=tenant.name,
        )
        spec = _spec(payment, pack.name, description, stars)
        thread = int(reply_to.thread_key) if reply_to.thread_key.isdigit() else None
        chat_id = int(reply_to.chat_key)
        await self._call(payment, self._api.send_invoice(chat_id, spec, thread_id=thread))
        return StarsInvoice(payment.id, "pack", pack.slug, pack.name, pack.tokens, stars)

    async def subscription_link(
        self, tenant: Tenant, plan: Plan, *, reply_to: ChatAddress | None, actor: str
    ) -> StarsInvoice:
        """A subscription link for ``plan``: its Stars price every 30 days."""
        stars = _price(plan.stars, "plan", plan.slug)
        payment = await self._row(
            tenant, "subscription", plan.slug, plan.tokens_included, stars, reply_to, actor
        )
        t = await self._reader(reply_to, tenant)
        spec = _spec(
            payment,
            t("{plan} plan", plan=plan.name),
            t(
                "{tokens} tokens every month for {organisation}",
                tokens=t.number(plan.tokens_included),
                organisation=tenant.name,
            ),
            stars,
        )
        url = await self._call(payment, self._api.subscription_link(spec))
        async with self._sessions.begin() as session:
            row = await PaymentRepository(session).by_id(payment.id, lock=True)
            if row is not None and row.url is None:
                row.url = url
        return StarsInvoice(
            payment.id, "subscription", plan.slug, plan.name, plan.tokens_included, stars, url
        )

    async def _row(
        self,
        tenant: Tenant,
        kind: str,
        item: str,
        tokens: int,
        stars: int,
        reply_to: ChatAddress | None,
        actor: str,
    ) -> Payment:
        payment = Payment(
            tenant_id=tenant.id,
            kind=kind,
            item=item,
            tokens=tokens,
            amount_micros=stars_to_micros(stars),
            currency=STARS_CURRENCY,
            status="pending",
            provider=STARS_PROVIDER,
            idempotency_key=f"stars-{secrets.token_hex(12)}",
            reply_to=reply_to.to_json() if reply_to else None,
            requested_by=actor,
            created_at=self._clock(),
        )
        async with self._sessions.begin() as session:
            await PaymentRepository(session).add(payment)
        return payment

    async def _reader(self, reply_to: ChatAddress | None, tenant: Tenant) -> Translator:
        """The language of whoever asked: their ``/language``, else the organisation's."""
        async with self._sessions() as session:
            return await reader_translator(
                session, self._translators, reply_to, tenant_id=tenant.id
            )

    async def _call(self, payment: Payment, call: Awaitable[T]) -> T:
        try:
            return await call
        except StarsApiError as exc:
            async with self._sessions.begin() as session:
                await PaymentRepository(session).fail(payment.id, exc.description, self._clock())
            raise PaymentUnavailable(
                f"Telegram refused the invoice: {exc.description}",
                user_message=lazy(
                    "Telegram could not create the invoice just now; please try again."
                ),
            ) from exc


def _price(stars: int | None, kind: str, slug: str) -> int:
    if not stars:
        raise NotForStars(
            f"{kind} {slug} has no Stars price",
            user_message=lazy(_NO_PRICE[kind], slug=slug),
        )
    return stars


def _spec(payment: Payment, title: str, description: str, stars: int) -> InvoiceSpec:
    return InvoiceSpec(
        title=title[:TITLE_LIMIT],
        description=description[:DESCRIPTION_LIMIT],
        payload=payload_of(payment.id),
        stars=stars,
        label=title[:TITLE_LIMIT],
    )
