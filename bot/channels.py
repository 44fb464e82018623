"""The channels ``switchboard run`` serves, built from settings.

This is the one place that reads ``TELEGRAM_*`` and ``SLACK_*`` settings. The adapters in
``handlers/`` take explicit arguments only, the way Bolt's aiohttp adapter knows nothing of where
its app came from. Each adapter (and its SDK) is imported only when its channel is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from admin_commands.registry import CommandRegistry
from bot.settings import Settings, secret_value
from core.envelope import ChatAddress, ReplySink
from handlers.deps import Deps
from handlers.pipeline import Pipeline

if TYPE_CHECKING:  # imported lazily at run time: the SDKs are slow to import
    from handlers.slack import SlackChannel, SlackOptions
    from handlers.telegram import TelegramChannel
    from handlers.telegram.delivery import Pacing

DEFAULT_SLACK_API_BASE = "https://slack.com/api/"


class Channel(Protocol):
    name: str

    def install_routes(self, app: web.Application) -> None:
        """Add HTTP routes (webhooks) before the server starts."""

    async def start(self) -> None:
        """Begin receiving (polling task, socket, webhook registration)."""

    async def stop(self) -> None:
        """Stop receiving; in-flight turns are drained by the service afterwards."""

    def sink_for(self, address: ChatAddress) -> ReplySink:
        """A sink writing to one of this channel's chats outside of any turn (the outbox)."""


def build_channels(
    settings: Settings, deps: Deps, pipeline: Pipeline, registry: CommandRegistry
) -> list[Channel]:
    """The channels the settings enable."""
    channels: list[Channel] = []
    if settings.telegram_enabled:
        channels.append(build_telegram_channel(settings, deps, pipeline, registry))
    if settings.slack_enabled:
        channels.append(build_slack_channel(settings, pipeline, registry))
    return channels


def build_telegram_channel(
    settings: Settings,
    deps: Deps,
    pipeline: Pipeline,
    registry: CommandRegistry,
    *,
    pacing: Pacing | None = None,
) -> TelegramChannel:
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession

    from handlers.telegram import TelegramChannel, api_server

    token = settings.telegram_bot_token
    if token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    session = AiohttpSession(api=api_server(settings.telegram_api_base))
    bot = Bot(token.get_secret_value(), session=session)
    secret = settings.telegram_webhook_secret
    routers = []
    if deps.stars is not None:  # TELEGRAM_PAYMENTS=stars: pre-checkout and payment updates
        from handlers.telegram.payments import payments_router

        routers.append(payments_router(deps.stars, deps.translators, deps.outbox.post))
    return TelegramChannel(
        bot,
        pipeline,
        registry=registry,
        sessions=deps.sessions,
        bot_usernames=deps.bot_usernames,
        mode=settings.telegram_mode,
        webhook_secret=secret.get_secret_value() if secret else None,
        public_base_url=settings.public_base_url,
        pacing=pacing,
        routers=routers,
        translators=deps.translators,
    )


def build_slack_channel(
    settings: Settings,
    pipeline: Pipeline,
    registry: CommandRegistry,
    *,
    options: SlackOptions | None = None,
) -> SlackChannel:
    """HTTP events when ``SLACK_SIGNING_SECRET`` is set, Socket Mode when ``SLACK_APP_TOKEN`` is
    (both may be on: the route stays available while the socket is the primary transport).

    Everything is passed explicitly to Bolt and the SDK (token, signing secret, base URL) so
    neither falls back to reading the process environment behind the settings' back.
    """
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    from handlers.slack import SlackChannel, SlackOptions
    from handlers.slack.text import CommandSpeller

    if settings.slack_bot_token is None:
        raise ValueError("Slack is not configured (SLACK_BOT_TOKEN)")
    token = settings.slack_bot_token.get_secret_value()
    signing_secret = secret_value(settings.slack_signing_secret)
    command = _slash_command(settings)
    logger = logging.getLogger("handlers.slack.bolt")
    client = AsyncWebClient(
        token=token, base_url=settings.slack_api_base or DEFAULT_SLACK_API_BASE, logger=logger
    )
    bolt = AsyncApp(
        name="switchboard",
        logger=logger,
        client=client,
        # Socket-only installs have no signing secret; Bolt never verifies socket requests, and
        # without one the HTTP route is not installed at all.
        signing_secret=signing_secret or "",
        process_before_response=True,
    )
    return SlackChannel(
        bolt=bolt,
        client=client,
        pipeline=pipeline,
        slash_command=command,
        token=token,
        options=options or SlackOptions(),
        speller=CommandSpeller(command, registry.groups()),
        signing_secret=signing_secret,
        app_token=secret_value(settings.slack_app_token),
    )


class OutboundSinks:
    """The shell's way into Telegram chats and Slack conversations without serving the channel:
    the Bot API and the Slack Web API with the configured tokens, for the outbox to deliver
    what a command wrote (``switchboard admin invoice send``). Clients are made on first use,
    so a command that writes to no chat never imports aiogram or the Slack SDK."""

    def __init__(self, settings: Settings, registry: CommandRegistry) -> None:
        self._settings = settings
        self._registry = registry
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._telegram: Any = None
        self._slack: Any = None

    @property
    def channels(self) -> list[str]:
        found = []
        if self._settings.telegram_bot_token is not None:
            found.append("telegram")
        if self._settings.slack_bot_token is not None:
            found.append("slack")
        return found

    def telegram(self, address: ChatAddress) -> ReplySink:
        from handlers.telegram.channel import sink_to

        if self._telegram is None:
            from aiogram import Bot
            from aiogram.client.session.aiohttp import AiohttpSession

            from handlers.telegram import api_server
            from handlers.telegram.delivery import Delivery, Pacing

            token = self._settings.telegram_bot_token
            assert token is not None
            session = AiohttpSession(api=api_server(self._settings.telegram_api_base))
            bot = Bot(token.get_secret_value(), session=session)
            self._closers.append(bot.session.close)
            self._telegram = Delivery(bot, Pacing())
        return sink_to(self._telegram, address)

    def slack(self, address: ChatAddress) -> ReplySink:
        from handlers.slack.channel import sink_to
        from handlers.slack.options import SlackOptions
        from handlers.slack.sink import StreamingSupport

        if self._slack is None:
            from slack_sdk.web.async_client import AsyncWebClient

            from handlers.slack.text import CommandSpeller

            token = self._settings.slack_bot_token
            assert token is not None
            client = AsyncWebClient(
                token=token.get_secret_value(),
                base_url=self._settings.slack_api_base or DEFAULT_SLACK_API_BASE,
                logger=logging.getLogger("handlers.slack.bolt"),
            )
            speller = CommandSpeller(_slash_command(self._settings), self._registry.groups())
            self._slack = (client, speller, StreamingSupport(available=False))
        client, speller, streaming = self._slack
        return sink_to(client, address, SlackOptions(), speller=speller, streaming=streaming)

    async def aclose(self) -> None:
        for close in self._closers:
            await close()


def _slash_command(settings: Settings) -> str:
    command = settings.slack_command.strip()
    return command if command.startswith("/") else "/" + command
