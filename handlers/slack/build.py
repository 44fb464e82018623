"""Builds the Slack channel from settings: the one place that reads ``SLACK_*`` values.

Everything is passed explicitly to Bolt and the SDK (token, signing secret, base URL) so neither
falls back to reading the process environment behind the settings' back.
"""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings
from handlers.pipeline import Pipeline
from handlers.services import Services
from handlers.slack.channel import SlackChannel
from handlers.slack.options import SlackOptions
from handlers.slack.text import CommandSpeller

DEFAULT_API_BASE = "https://slack.com/api/"


def build_slack_channel(
    settings: Settings,
    services: Services,
    pipeline: Pipeline,
    *,
    options: SlackOptions | None = None,
) -> SlackChannel:
    """HTTP events when ``SLACK_SIGNING_SECRET`` is set, Socket Mode when ``SLACK_APP_TOKEN`` is
    (both may be on: the route stays available while the socket is the primary transport)."""
    if settings.slack_bot_token is None:
        raise ValueError("Slack is not configured (SLACK_BOT_TOKEN)")
    token = settings.slack_bot_token.get_secret_value()
    signing_secret = (
        settings.slack_signing_secret.get_secret_value()
        if settings.slack_signing_secret is not None
        else None
    )
    app_token = (
        settings.slack_app_token.get_secret_value()
        if settings.slack_app_token is not None
        else None
    )
    command = settings.slack_command.strip()
    command = command if command.startswith("/") else "/" + command
    api_base = settings.slack_api_base or DEFAULT_API_BASE
    logger = logging.getLogger("handlers.slack.bolt")
    client = AsyncWebClient(token=token, base_url=api_base, logger=logger)
    bolt = AsyncApp(
        name="switchboard",
        logger=logger,
        client=client,
        # Socket-only installs have no signing secret; Bolt never verifies socket requests, and
        # without one the HTTP route is not installed at all.
        signing_secret=signing_secret or "",
        process_before_response=True,
    )
    speller = CommandSpeller(command, services.commands.groups())
    return SlackChannel(
        bolt=bolt,
        client=client,
        pipeline=pipeline,
        slash_command=command,
        token=token,
        options=options or SlackOptions(),
        speller=speller,
        http_events=signing_secret is not None,
        app_token=app_token,
    )
