"""What every webhook effect handler gets: the transaction, the time, and where notices go
(the outbox table, in the effect's own transaction)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from billing.alerts import payment_alert_subject, payment_alert_text
from billing.notices import Notice, address_of, admin_addresses, enqueue, still_the_tenants
from billing.stripe.subscription_state import SubscriptionState
from storage.models import Tenant
from storage.repositories.admins import AuditRepository
from storage.repositories.alerts import AlertRepository
from storage.repositories.sent_alerts import SentAlertRepository

if TYPE_CHECKING:
    from billing.invoicing.documents import DocumentDelivery
    from core.envelope import OutboundFile

log = logging.getLogger(__name__)

StripeObject = Mapping[str, Any]


class StripeApi(Protocol):
    """What webhook effects ask of the Stripe API (:class:`billing.stripe.client.StripeCheckout`).

    Called inside the effect's transaction, with idempotency keys derived from the Stripe
    objects: a call that fails rolls the effect back and Stripe's retry of the event makes it
    again; a call that succeeded before a rollback is replayed by Stripe, not repeated.
    """

    async def cancel_subscription(self, subscription_id: str, *, idempotency_key: str) -> None: ...

    async def refund(
        self, payment_intent: str, *, idempotency_key: str, metadata: dict[str, str]
    ) -> str: ...

    async def invoice_payment_intent(self, invoice_id: str) -> str | None: ...

    async def subscription(self, subscription_id: str) -> SubscriptionState: ...


@dataclass(slots=True)
class EffectContext:
    """One event being applied, inside the transaction that records it as applied."""

    session: AsyncSession
    now: datetime
    event_id: str
    event_type: str
    notices: list[Notice] = field(default_factory=list)
    #: What :meth:`tell` said, with the tenant it is about, until :meth:`settle_told`.
    _told: list[tuple[Notice, int]] = field(default_factory=list)
    #: The Stripe API, when a secret key is configured (webhooks alone need only the secret).
    api: StripeApi | None = None
    #: ``COMPANY_COUNTRY``: receipts apply reverse charge from it, as invoices do.
    issuer_country: str = ""
    #: Names the effect in the outbox (its messages are written once per recipient however
    #: often it runs); the event id when empty.
    cause: str = ""
    #: The outbox rows :meth:`settle_told` wrote, for the process to deliver after commit.
    outbox_ids: list[int] = field(default_factory=list)
    #: How receipts and credit notes reach the tenant as PDFs; None: their notices are text.
    documents: DocumentDelivery | None = None
    _written: int = 0

    def tell(
        self,
        stored_address: dict[str, Any] | None,
        text: str,
        *,
        tenant_id: int,
        files: tuple[OutboundFile, ...] = (),
    ) -> None:
        """Tell the chat that asked (for a link, a subscription) about tenant ``tenant_id``'s
        payment, if it still may hear it (with ``files`` before the text, a receipt's PDF):
        see :meth:`settle_told`."""
        address = address_of(stored_address)
        if address is not None:
            notice = Notice(address, text, files=files, tenant_id=tenant_id)
            self._told.append((notice, tenant_id))

    async def settle_told(self) -> None:
        """Keep what :meth:`tell` said only for chats that are the tenant's now (a chat moved to
        another tenant since it asked must not hear this one's balance) or a platform admin's
        own chat (``/buy --tenant``), and write every notice of the effect into the outbox;
        run before the effect's transaction ends (again after any later notice)."""
        admins = {(a.channel, a.chat_key) for a in await admin_addresses(self.session)}
        for notice, tenant_id in self._told:
            address = notice.address
            mine = await still_the_tenants(self.session, tenant_id, [address])
            if mine or (address.channel, address.chat_key) in admins:
                self.notices.append(notice)
            else:
                log.info("not telling %s: no longer a chat of tenant %s", address, tenant_id)
        self._told.clear()
        await self._write()

    async def _write(self) -> None:
        """The notices not yet written, into the outbox (in this transaction)."""
        fresh, self._written = self.notices[self._written :], len(self.notices)
        self.outbox_ids += await enqueue(
            self.session, fresh, cause_kind="stripe", cause_ref=self.cause or self.event_id,
            now=self.now, media_dir=self.documents.media_dir if self.documents else None,
        )  # fmt: skip

    async def alert(self, kind: str, tenant: Tenant | None, detail: str) -> None:
        """Record an alert and tell the admins at once: money is involved.

        It is recorded as pushed, too, so the daily push does not send it a second time.
        """
        log.warning("billing alert %s: %s", kind, detail)
        recorded = await AlertRepository(self.session).add(
            kind, detail, now=self.now, tenant_id=tenant.id if tenant else None
        )
        text = payment_alert_text(kind, detail)
        for address in await admin_addresses(self.session):
            self.notices.append(
                Notice(
                    address, text[:1].upper() + text[1:], tenant_id=tenant.id if tenant else None
                )
            )
        key = ("failed_payment", tenant.slug if tenant else "", payment_alert_subject(recorded.id))
        await SentAlertRepository(self.session).record_new(self.now.date(), [key], self.now)

    async def paid_by(self, tenant: Tenant, what: str) -> None:
        """``tenant`` paid for ``what`` through Stripe: see :func:`becomes_customer`."""
        await becomes_customer(self.session, tenant, now=self.now, actor="stripe", what=what)


async def becomes_customer(
    session: AsyncSession, tenant: Tenant, *, now: datetime, actor: str, what: str
) -> bool:
    """DESIGN §8 "Trial → paying customer": a ``trial`` tenant that pays (a pack, a
    subscription period, an invoice) is ``active`` from now on, in the transaction that records
    the payment, audited as ``tenant.activate``. Every paid path calls this; True if it changed
    the status. A suspended tenant stays suspended: that is an operator's decision."""
    if tenant.status != "trial":
        return False
    tenant.status = "active"
    await AuditRepository(session).record(
        actor,
        "tenant.activate",
        tenant.slug,
        {"status": "trial"},
        {"status": "active", "paid": what, "at": now.isoformat()},
        tenant_id=tenant.id,
    )
    return True


Apply = Callable[[EffectContext, StripeObject], Awaitable[None]]
EffectKey = Callable[[str, StripeObject], str]


@dataclass(frozen=True, slots=True)
class Route:
    """How one event type is handled: ``key`` names the effect (recorded once, ever), and
    ``apply`` makes it."""

    key: EffectKey
    apply: Apply


def by_object(event_type: str, obj: StripeObject) -> str:
    """One effect per event type and Stripe object."""
    return f"{event_type}:{obj['id']}"


def text(obj: StripeObject, *path: str) -> str | None:
    """A nested string field (``text(invoice, "parent", "subscription_details", "subscription")``)
    or None when any step is missing; an expanded object gives its ``id``."""
    value: Any = obj
    for step in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def number(obj: StripeObject, name: str) -> int | None:
    value = obj.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def metadata(obj: StripeObject, *path: str) -> dict[str, str]:
    value: Any = obj
    for step in (*path, "metadata"):
        if not isinstance(value, Mapping):
            return {}
        value = value.get(step)
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}
