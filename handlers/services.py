"""What the composition root (``bot.app``) hands to the pipeline, commands and channels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistants.pricing import Pricer
from assistants.types import ProviderClient
from billing.metering import Clock, Metering
from handlers.metrics import Metrics

if TYPE_CHECKING:
    from admin_commands.registry import CommandRegistry


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    billing_currency: str = "EUR"
    vat_rate: Decimal = Decimal("0.20")
    usd_to_billing_rate: Decimal = Decimal("1")
    default_provider: str | None = None
    default_model: str | None = None
    context_token_budget: int = 6000
    context_max_messages: int = 40
    rate_limit_per_minute: int = 20
    trial_days: int = 14
    media_dir: Path = Path("./media")


@dataclass(slots=True)
class Services:
    sessions: async_sessionmaker[AsyncSession]
    providers: Mapping[str, ProviderClient]
    pricer: Pricer
    metering: Metering
    commands: CommandRegistry
    metrics: Metrics
    clock: Clock
    config: ServiceConfig
    #: Bot usernames learnt at channel start-up (e.g. ``{"telegram": "acme_bot"}``), for links.
    bot_usernames: dict[str, str] = field(default_factory=dict)
