"""What commands need from the running process, declared here so ``admin_commands`` depends on
nothing above it: the composition root hands over an object with these attributes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from assistants.types import ProviderClient
from billing.conversion import CostConversion
from billing.metering import Metering
from core.clock import Clock
from core.i18n import Translators
from storage.db import Sessions

if TYPE_CHECKING:
    from billing.invoicing.monthly import MonthlyInvoicing
    from billing.invoicing.service import InvoiceService
    from billing.stars.service import StarsPayments
    from billing.stripe.checkout import CheckoutService


@dataclass(frozen=True, slots=True)
class CommandConfig:
    """Defaults commands apply when they create things (tenants, assistants) or show money."""

    billing_currency: str = "EUR"
    vat_rate: Decimal = Decimal("0.20")
    usd_to_billing_rate: Decimal = Decimal("1")
    #: What one Telegram Star is worth in the billing currency (revenue totals).
    stars_to_billing_rate: Decimal = Decimal("0.013")
    default_provider: str | None = None
    default_model: str | None = None
    trial_days: int = 14

    @property
    def conversion(self) -> CostConversion:
        return CostConversion(self.billing_currency, self.usd_to_billing_rate)


class DeliveryReport(Protocol):
    """What an attempt to deliver outbox rows did (``handlers.outbox.Delivered``)."""

    @property
    def sent(self) -> int: ...

    @property
    def failed(self) -> int:
        """Attempted and failed: tried again later."""
        ...

    @property
    def left(self) -> int:
        """Not attempted here: a channel this process does not reach."""
        ...

    @property
    def errors(self) -> tuple[str, ...]: ...


class OutboxDelivery(Protocol):
    async def deliver(self, ids: Sequence[int]) -> DeliveryReport:
        """Attempt outbox rows just committed, those this process can reach."""
        ...

    def reaches(self, channel: str) -> bool:
        """Whether this process can deliver to ``channel`` at all."""
        ...


class CommandDeps(Protocol):
    @property
    def sessions(self) -> Sessions: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def config(self) -> CommandConfig: ...

    @property
    def media_dir(self) -> Path:
        """Where media outputs are stored: a library item's ``media_path`` is relative to it."""
        ...

    @property
    def bot_usernames(self) -> Mapping[str, str]:
        """Bot usernames learnt at channel start-up (``{"telegram": "acme_bot"}``), for links."""
        ...

    @property
    def checkout(self) -> CheckoutService | None:
        """Makes Stripe payment links; None when Stripe is not configured."""
        ...

    @property
    def stars(self) -> StarsPayments | None:
        """Telegram Stars invoices (``TELEGRAM_PAYMENTS=stars``); None otherwise."""
        ...

    @property
    def invoices(self) -> InvoiceService: ...

    @property
    def monthly_invoicing(self) -> MonthlyInvoicing: ...

    @property
    def outbox(self) -> OutboxDelivery:
        """Delivers outbox rows (invoices sent to a tenant's chats) from this process."""
        ...

    @property
    def providers(self) -> Mapping[str, ProviderClient]:
        """Provider clients by name (``/image`` and ``/speak`` call them)."""
        ...

    @property
    def metering(self) -> Metering:
        """The one metered path: every provider call reserves, then settles or releases."""
        ...

    @property
    def translators(self) -> Translators:
        """Replies in the caller's language: ``ctx.deps.translators.get(ctx.caller.language)``."""
        ...
