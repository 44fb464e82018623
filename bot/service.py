"""``switchboard run``: the long-running service."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import suppress
from datetime import timedelta

from aiohttp import web

from assistants.pricing import warm_up_prices
from billing.invoicing.jobs import InvoiceJobs
from billing.stars.expiry import StarsExpiry
from bot.app import App, prepare_database
from bot.channels import Channel, build_channels
from bot.heap import StartUpHeap
from bot.http import build_web_app
from bot.settings import secret_value
from core.errors import ConfigurationError
from handlers.alert_push import DailyAlerts
from handlers.outbox import POLL_SECONDS
from handlers.recovery import InterruptedTurns
from storage.repositories.jobs import JobClaims

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 60
#: How often the alert push looks whether it is time (and whether another process did it).
ALERT_CHECK_SECONDS = 60
DRAIN_TIMEOUT_SECONDS = 60


class ServiceRunner:
    """Starts the HTTP server and the channels, sweeps reservations, stops gracefully."""

    def __init__(
        self, app: App, channels: list[Channel], *, heap: StartUpHeap | None = None
    ) -> None:
        self.app = app
        self.channels = channels
        #: Given by ``serve`` (a process of its own): frozen once start-up and warm-up are done.
        self._heap = heap
        self.web_app = build_web_app(
            app.deps, metrics_token=secret_value(app.settings.metrics_token)
        )
        for channel in channels:
            channel.install_routes(self.web_app)
            app.deps.outbox.register(channel.name, channel.sink_for)
        self.invoice_jobs = InvoiceJobs(
            JobClaims(app.deps.sessions, holder=app.deps.metering.holder),
            app.deps.monthly_invoicing,
            app.deps.invoices,
            clock=app.deps.clock,
        )
        #: Stars subscriptions past their period's end go back to prepaid (hourly, one process).
        self.stars_expiry = StarsExpiry(
            app.deps.sessions,
            JobClaims(app.deps.sessions, holder=app.deps.metering.holder),
            clock=app.deps.clock,
            translators=app.deps.translators,
        )
        self._runner: web.AppRunner | None = None
        self._warm_up: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.port: int | None = None
        self.interrupted = InterruptedTurns(
            app.deps.sessions,
            app.deps.clock,
            grace=timedelta(seconds=app.settings.recovery_grace_seconds),
            translators=app.deps.translators,
        )
        self.alerts = DailyAlerts(
            app.deps.sessions,
            app.deps.clock,
            hour=app.settings.alerts_hour,
            holder=app.deps.metering.holder,
            post=app.deps.outbox.post,
            translators=app.deps.translators,
        )
        #: Seconds between two passes of the outbox worker.
        self.outbox_poll_seconds = POLL_SECONDS

    async def start(self) -> None:
        settings = self.app.settings
        for warning in settings.service_warnings():
            log.warning("%s", warning)
        # Begun first, so the imports overlap the start-up's waits (the database, the channels'
        # first calls) and are mostly done when the first updates arrive.
        self._warm_up = asyncio.create_task(asyncio.to_thread(self._load_lazy_parts))
        await prepare_database(self.app)
        self._runner = web.AppRunner(self.web_app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, settings.http_host, settings.http_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else settings.http_port
        log.info("HTTP server on %s:%s", settings.http_host, self.port)
        for channel in self.channels:
            await channel.start()
            log.info("channel %s started", channel.name)
        if self._heap is not None:
            # Once both start-up and the warm-up are through (now, if the warm-up was first).
            heap = self._heap
            self._warm_up.add_done_callback(lambda _: heap.settle())

    def _load_lazy_parts(self) -> None:
        """What the first turn would otherwise load (SDK modules and models, price data), in a
        worker thread beside the start-up: start-up does not wait for it, and the event loop
        keeps serving meanwhile."""
        try:
            # Providers first: a turn needs its client when it starts streaming, the prices
            # only when it settles.
            for provider in self.app.deps.providers.values():
                provider.warm_up()
            warm_up_prices()
        except Exception:  # only an optimisation: the first turn loads whatever failed here
            log.exception("warming up failed")

    async def run_until_stopped(self) -> None:
        background = [
            asyncio.create_task(self._sweep()),
            asyncio.create_task(self._push_alerts()),
            asyncio.create_task(self.app.deps.outbox.work(self.outbox_poll_seconds)),
        ]
        try:
            await self._stopping.wait()
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with suppress(asyncio.CancelledError):
                    await task

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        """Stop receiving, let in-flight turns finish, then close everything."""
        # Messages being sent need the channels: finish them first (what is not attempted stays
        # in the outbox for the next process). Webhooks from now on are answered 503, and
        # Stripe redelivers them to a process that is up.
        outbox = self.app.deps.outbox
        outbox.close()
        if not await outbox.drain(DRAIN_TIMEOUT_SECONDS):
            log.warning("outbox messages still being sent at shutdown")
        for channel in self.channels:
            with suppress(Exception):
                await channel.stop()
        if not await self.app.pipeline.drain(DRAIN_TIMEOUT_SECONDS):
            log.warning("%d turns still running at shutdown", self.app.pipeline.inflight)
        if self._warm_up is not None:
            await self._warm_up  # a worker thread cannot be cancelled; it is short
        if self._runner is not None:
            await self._runner.cleanup()
        await self.app.aclose()

    async def _sweep(self) -> None:
        """Release orphaned reservations and tell users whose turn a crash cut short.

        The first pass waits for the recovery grace (a redelivered update answers its user
        better than an apology), then it runs every minute.
        """
        await asyncio.sleep(self.app.settings.recovery_grace_seconds)
        while True:
            try:
                await self.app.deps.metering.release_orphans()
            except Exception:
                log.exception("reservation sweep failed")
            try:
                self.app.deps.outbox.post(await self.interrupted.sweep())
            except Exception:
                log.exception("interrupted-turn sweep failed")
            try:
                await self.invoice_jobs.tick()
            except Exception:
                log.exception("invoice jobs failed")
            try:
                self.app.deps.outbox.post(await self.stars_expiry.tick() or [])
            except Exception:
                log.exception("Stars subscription expiry failed")
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)

    async def _push_alerts(self) -> None:
        """Send the day's new alerts to the admins once a day at ``ALERTS_HOUR`` (UTC)."""
        while True:
            try:
                await self.alerts.push_due()
            except Exception:
                log.exception("alert push failed")
            await asyncio.sleep(ALERT_CHECK_SECONDS)


async def serve(app: App) -> None:
    problems = app.settings.service_problems()
    if problems:
        raise ConfigurationError(problems)
    heap = StartUpHeap()
    heap.hold()
    channels = build_channels(app.settings, app.deps, app.pipeline, app.registry)
    service = ServiceRunner(app, channels, heap=heap)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, service.request_stop)
    try:
        await service.start()
        await service.run_until_stopped()
    finally:
        log.info("shutting down")
        await service.stop()
