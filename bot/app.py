"""Composition root: builds every object of a Switchboard process from :class:`Settings`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from admin_commands import build_registry
from admin_commands.deps import CommandConfig
from admin_commands.registry import CommandRegistry
from assistants.defaults import seed_default_assistants
from assistants.pricing import Pricer
from assistants.providers.factory import build_provider_clients
from assistants.types import ProviderClient
from billing.catalog import seed_catalog
from billing.invoicing.monthly import MonthlyInvoicing
from billing.invoicing.service import SEND_CAUSE, InvoiceConfig, InvoiceService
from billing.invoicing.views import Issuer
from billing.metering import Metering
from billing.stripe.checkout import CheckoutService, ReturnUrls
from billing.stripe.effects import StripeApi
from bot.settings import Settings, secret_value
from core.clock import Clock, system_clock
from core.errors import ConfigurationError
from core.i18n import Translators
from handlers.deps import Deps, TurnConfig
from handlers.metrics import Metrics
from handlers.outbox import Outbox
from handlers.pipeline import Pipeline, build_pipeline
from storage import migrate
from storage.db import Sessions, create_engine, create_session_factory
from storage.db_stats import DbStats
from storage.repositories.admins import AdminRepository

log = logging.getLogger(__name__)

#: The gettext catalogs (``python3 tasks.py i18n`` keeps them in step with the code).
LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"


@dataclass(slots=True)
class App:
    """Everything one process runs on, built once from its settings."""

    settings: Settings
    engine: AsyncEngine
    deps: Deps
    registry: CommandRegistry
    pipeline: Pipeline
    #: Closed with the app (the Stripe client's HTTP session).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for client in self.deps.providers.values():
            await client.aclose()
        for close in self.closers:
            await close()
        await self.deps.sessions.dispose()
        await self.engine.dispose()


def build_app(
    settings: Settings,
    *,
    providers: Mapping[str, ProviderClient] | None = None,
    clock: Clock = system_clock,
) -> App:
    engine = create_engine(settings.database_url)
    db_stats = DbStats()
    sessions = create_session_factory(engine, db_stats)
    if providers is None:
        providers = build_provider_clients(
            openai_api_key=secret_value(settings.openai_api_key),
            openai_base_url=settings.openai_base_url,
            anthropic_api_key=secret_value(settings.anthropic_api_key),
            anthropic_base_url=settings.anthropic_base_url,
            timeout=settings.provider_timeout_seconds,
        )
    metrics = Metrics()
    metrics.watch_database(db_stats)
    translators = Translators(LOCALE_DIR, default=settings.default_language)
    pricer = Pricer()
    metering = Metering(
        sessions,
        pricer,
        clock=clock,
        reservation_ttl=timedelta(seconds=settings.reservation_ttl_seconds),
        # A call waiting for others' reservations waits at most as long as one of them can run.
        reservation_wait=timedelta(
            seconds=settings.reservation_wait_seconds or settings.provider_timeout_seconds
        ),
    )
    invoice_config = InvoiceConfig(
        currency=settings.billing_currency,
        vat_rate=settings.vat_rate,
        usd_to_billing_rate=settings.usd_to_billing_rate,
        due_days=settings.invoice_due_days,
        issuer=Issuer(
            name=settings.company_name,
            address=settings.company_address,
            vat_id=settings.company_vat_id,
            country=settings.company_country,
            legal_id=settings.company_legal_id,
            bank=settings.company_bank,
            payment_terms=settings.invoice_payment_terms,
            language=settings.default_language,
            translators=translators,
        ),
    )
    deps = Deps(
        sessions=sessions,
        providers=providers,
        pricer=pricer,
        metering=metering,
        metrics=metrics,
        clock=clock,
        config=CommandConfig(
            billing_currency=settings.billing_currency,
            vat_rate=settings.vat_rate,
            usd_to_billing_rate=settings.usd_to_billing_rate,
            stars_to_billing_rate=settings.stars_to_billing_rate,
            default_provider=settings.provider,
            default_model=settings.model,
        ),
        turn=TurnConfig(
            context_token_budget=settings.context_token_budget,
            rate_limit_per_minute=settings.rate_limit_per_minute,
        ),
        media_dir=settings.media_dir,
        invoices=InvoiceService(sessions, invoice_config, clock=clock),
        monthly_invoicing=MonthlyInvoicing(sessions, invoice_config, clock=clock),
        translators=translators,
        outbox=Outbox(sessions, media_dir=settings.media_dir, clock=clock, owner=metering.holder),
    )
    deps.outbox.react(SEND_CAUSE, deps.invoices.delivered)
    closers = _build_payments(settings, deps, sessions, clock)
    closers += _build_stars(settings, deps, clock)
    registry = build_registry()
    closers += _build_outbound(settings, deps, registry)
    _build_mail(settings, deps)
    return App(settings, engine, deps, registry, build_pipeline(deps, registry), closers)


def _build_outbound(
    settings: Settings, deps: Deps, registry: CommandRegistry
) -> list[Callable[[], Awaitable[None]]]:
    """The chat channels this process can write to without serving them (the Bot API, the
    Slack Web API), so that the shell delivers the outbox rows its commands write;
    ``switchboard run`` replaces them with its running channels."""
    from bot.channels import OutboundSinks

    sinks = OutboundSinks(settings, registry)
    for channel in sinks.channels:
        deps.outbox.register(channel, sinks.telegram if channel == "telegram" else sinks.slack)
    return [sinks.aclose]


def _build_mail(settings: Settings, deps: Deps) -> None:
    """E-mail, when ``SMTP_URL`` is set: any process can send it (the shell too)."""
    url = secret_value(settings.smtp_url)
    if url is None:
        return
    from handlers.mail import CHANNEL, SmtpMailer, SmtpServer

    try:
        server = SmtpServer.parse(url)
    except ValueError as exc:
        raise ConfigurationError([str(exc)]) from None
    sender = settings.smtp_from or (settings.company_name and f"billing@{server.host}") or ""
    deps.outbox.register(
        CHANNEL, SmtpMailer(server, sender or f"switchboard@{server.host}").sink_for
    )


def _build_payments(
    settings: Settings, deps: Deps, sessions: Sessions, clock: Clock
) -> list[Callable[[], Awaitable[None]]]:
    """The Stripe client (built once, only when configured) behind checkout and the webhook."""
    closers: list[Callable[[], Awaitable[None]]] = []
    api: StripeApi | None = None
    key = secret_value(settings.stripe_secret_key)
    if key is not None and settings.public_base_url:
        from billing.stripe.client import StripeCheckout, build_stripe_client

        client, http = build_stripe_client(
            key, api_base=settings.stripe_api_base, timeout_seconds=settings.stripe_timeout_seconds
        )
        stripe = api = StripeCheckout(client, http)
        closers.append(stripe.aclose)
        deps.checkout = CheckoutService(
            sessions, stripe, ReturnUrls.under(settings.public_base_url), clock=clock,
            translators=deps.translators,
        )  # fmt: skip
        deps.invoices.attach_checkout(deps.checkout)
    webhook_secret = secret_value(settings.stripe_webhook_secret)
    if webhook_secret is not None:
        from billing.invoicing.documents import DocumentDelivery
        from billing.stripe.webhook import StripeWebhook

        deps.stripe_webhook = StripeWebhook(
            sessions, webhook_secret, clock=clock, api=api,
            issuer_country=deps.invoices.config.issuer.country,
            documents=DocumentDelivery(
                deps.invoices.config.issuer, settings.media_dir,
                email=secret_value(settings.smtp_url) is not None,
            ),
        )  # fmt: skip
    return closers


def _build_stars(
    settings: Settings, deps: Deps, clock: Clock
) -> list[Callable[[], Awaitable[None]]]:
    """Telegram Stars (``TELEGRAM_PAYMENTS=stars``): its own Bot API client, so that any
    process (the shell's ``/payments refund`` too) reaches Telegram."""
    token = settings.telegram_bot_token
    if settings.telegram_payments != "stars" or token is None:
        return []
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession

    from billing.stars.service import StarsPayments
    from handlers.telegram import api_server
    from handlers.telegram.payments import AiogramStarsApi

    bot = Bot(
        token.get_secret_value(),
        session=AiohttpSession(api=api_server(settings.telegram_api_base)),
    )
    deps.stars = StarsPayments(
        deps.sessions, AiogramStarsApi(bot), clock=clock,
        issuer_country=deps.invoices.config.issuer.country, translators=deps.translators,
    )  # fmt: skip
    return [bot.session.close]


async def prepare_database(app: App) -> None:
    """Migrate, seed the default assistants, packs and plans, register SUPERADMINS, release
    orphaned reservations."""
    await migrate.upgrade(app.engine)
    settings = app.settings
    async with app.deps.sessions.begin() as session:
        if settings.provider and settings.model:
            created = await seed_default_assistants(session, settings.provider, settings.model)
            if created:
                log.info("seeded assistants: %s", ", ".join(created))
        added = await seed_catalog(session, settings.billing_currency)
        if added:
            log.info("seeded %s", ", ".join(added))
        admins = AdminRepository(session)
        for channel, ident in settings.superadmin_identities():
            await admins.upsert(channel, ident, "super_admin", created_by="SUPERADMINS")
    released = await app.deps.metering.release_orphans()
    if released:
        log.warning("released %d orphaned reservations at start-up", len(released))
