"""What the composition root (``bot.app``) hands to the pipeline and the channels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from admin_commands.deps import CommandConfig
from assistants.pricing import Pricer
from assistants.types import ProviderClient
from billing.invoicing.monthly import MonthlyInvoicing
from billing.invoicing.service import InvoiceService
from billing.metering import Metering
from core.clock import Clock
from core.i18n import Translators
from handlers.metrics import Metrics
from handlers.outbox import Outbox
from storage.config_cache import ConfigCache
from storage.db import Sessions

if TYPE_CHECKING:  # the Stripe SDK is imported only when payments are configured
    from billing.stars.service import StarsPayments
    from billing.stripe.checkout import CheckoutService
    from billing.stripe.webhook import StripeWebhook


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """Knobs of the assistant turn and the middlewares around it."""

    context_token_budget: int = 6000
    context_max_messages: int = 40
    rate_limit_per_minute: int = 20
    #: How long an answered turn keeps trying to reach an unreachable database before it
    #: charges the usage on its own (and then how long that keeps trying).
    persist_retry_seconds: float = 60.0
    #: How long an update's claim is held before a redelivery may take it over (when its holder
    #: cannot be seen to have exited): longer than any turn runs.
    claim_lease: timedelta = timedelta(minutes=5)


@dataclass(slots=True)
class Deps:
    """The process's shared parts. It also satisfies :class:`admin_commands.deps.CommandDeps`,
    so commands receive it as is, seeing only what that protocol declares."""

    sessions: Sessions
    providers: Mapping[str, ProviderClient]
    pricer: Pricer
    metering: Metering
    metrics: Metrics
    clock: Clock
    config: CommandConfig
    turn: TurnConfig
    #: Where media outputs live (``content_items.media_path`` is relative to it).
    media_dir: Path
    invoices: InvoiceService
    monthly_invoicing: MonthlyInvoicing
    #: The message catalogs of every language (replies in the caller's language).
    translators: Translators
    #: Delivers the outbox table (messages outside of turns) through the channels this
    #: process reaches.
    outbox: Outbox
    #: Bot usernames learnt at channel start-up (e.g. ``{"telegram": "acme_bot"}``), for links.
    bot_usernames: dict[str, str] = field(default_factory=dict)
    #: Stripe Checkout links (``/buy``, ``/subscribe``); None when Stripe is not configured.
    checkout: CheckoutService | None = None
    #: Verifies and applies ``POST /stripe/webhook``; None without ``STRIPE_WEBHOOK_SECRET``.
    stripe_webhook: StripeWebhook | None = None
    #: Telegram Stars invoices and refunds; None unless ``TELEGRAM_PAYMENTS=stars``.
    stars: StarsPayments | None = None
    #: Who is who (admin roles, bindings, tenants, members), valid for one configuration
    #: version: see :mod:`storage.config_cache`.
    config_cache: ConfigCache = field(default_factory=ConfigCache)
