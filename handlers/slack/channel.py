"""The Slack channel: Bolt receives (HTTP events or Socket Mode), the pipeline answers.

Listeners are thin glue. They turn a payload into an envelope, start the turn in a background
task and return at once, so Bolt acknowledges within Slack's 3 seconds (``process_before_response``
makes Bolt run them before answering, which is what lets us own — and drain — every task).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.envelope import ChatAddress
from core.errors import ConfigurationError, SwitchboardError
from core.i18n import lazy
from handlers.background import BackgroundTasks
from handlers.pipeline import Pipeline
from handlers.slack.events import CHANNEL, Inbound, from_command, from_event
from handlers.slack.options import SlackOptions
from handlers.slack.request import Refusal, SignedRequests, replay_key
from handlers.slack.sink import SlackSink, SlackTarget, StreamingSupport

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
#: auth.test errors that mean the token itself is wrong (refuse to start) rather than Slack down.
_BAD_TOKEN = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)


class SlackChannel:
    name = CHANNEL

    def __init__(
        self,
        *,
        bolt: AsyncApp,
        client: AsyncWebClient,
        pipeline: Pipeline,
        slash_command: str,
        token: str,
        options: SlackOptions,
        speller: Callable[[str], str],
        signing_secret: str | None,
        app_token: str | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.bolt = bolt
        self.client = client
        self.options = options
        #: Verifies /slack/events requests; without a signing secret the route is not served.
        self._signed = SignedRequests(signing_secret) if signing_secret else None
        self._pipeline = pipeline
        self._token = token
        self._speller = speller
        self._app_token = app_token
        self._socket: AsyncSocketModeHandler | None = None
        self._now = now
        self._streaming = StreamingSupport()
        self._names: dict[str, str | None] = {}
        self._tasks = BackgroundTasks("slack")
        self._accepting = True
        bolt.event("message")(self._on_event)
        bolt.event("app_mention")(self._on_event)
        bolt.event(re.compile(".*"))(self._on_other_event)
        bolt.command(slash_command)(self._on_command)
        bolt.action(re.compile(".*"))(self._on_action)
        bolt.error(self._on_bolt_error)

    @property
    def http_events(self) -> bool:
        return self._signed is not None

    @property
    def socket_mode(self) -> bool:
        return self._app_token is not None

    # -- Channel protocol --------------------------------------------------------------------

    def install_routes(self, app: web.Application) -> None:
        if self.http_events:
            app.router.add_post(EVENTS_PATH, self._on_http)

    async def start(self) -> None:
        # One keep-alive session for every Web API call (Bolt's per-request clients copy it):
        # a streamed reply makes several calls a second, each would otherwise open a connection.
        if self.client.session is None:
            self.client.session = aiohttp.ClientSession()
        await self._check_token()
        if self._app_token is not None:
            self._socket = await self._open_socket(self._app_token)
            log.info("Slack Socket Mode connected")

    async def stop(self) -> None:
        """Stop receiving, let running turns finish (up to ``drain_timeout``), cancel the rest."""
        self._accepting = False
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        await self._tasks.shutdown(self.options.drain_timeout)
        if self.client.session is not None:
            await self.client.session.close()
            self.client.session = None

    async def drain(self, seconds: float) -> bool:
        """Wait until every turn this channel started has finished; False if ``seconds`` ran
        out first."""
        return await self._tasks.drain(seconds)

    def sink_for(self, address: ChatAddress) -> SlackSink:
        """Writes to a chat outside of any turn (the outbox's messages): see :func:`sink_to`."""
        return sink_to(
            self.client, address, self.options, speller=self._speller, streaming=self._streaming
        )

    # -- receiving -----------------------------------------------------------------------------

    async def _on_http(self, request: web.Request) -> web.StreamResponse:
        if self._signed is None:
            raise web.HTTPNotFound()  # not reached: the route is installed with a secret only
        if not self._accepting:
            # Slack retries a 5xx later, to whichever process is up by then.
            return web.Response(status=503, text="shutting down")
        verified = self._signed.read(await request.read(), request.headers, request.query_string)
        if isinstance(verified, Refusal):
            # Anyone can post here: one line, no traceback, and nothing was run.
            log.info("Slack request refused (%d): %s", verified.status, verified.reason)
            return web.Response(status=verified.status, text=verified.reason)
        response = await self.bolt.async_dispatch(verified)
        return await to_aiohttp_response(response)

    async def _on_bolt_error(self, error: Exception) -> BoltResponse:
        """A verified request Bolt could not match or run: a payload of a shape Slack does not
        send (``"event": "x"``, ``"actions": "x"``...). It is answered 400 in one log line; the
        traceback is there at DEBUG for whoever needs it."""
        # A warning, unlike the refusals before verification: this request was signed.
        log.warning("Slack request refused (400): %s: %s", type(error).__name__, error)
        log.debug("Slack request error", exc_info=error)
        return BoltResponse(status=400, body="bad request")

    async def _on_event(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        inbound = from_event(
            body, event, bot_user_id=context.bot_user_id, fetch=self._download, now=self._now
        )
        if inbound is not None:
            self._spawn(inbound)

    async def _on_other_event(self) -> None:
        """Events we subscribe to but do not act on are acknowledged, not retried by Slack."""

    async def _on_action(self, ack: AsyncAck) -> None:
        """No interactive components yet: acknowledge so Slack shows no error."""
        await ack()

    async def _on_command(
        self, ack: AsyncAck, command: dict[str, Any], request: AsyncBoltRequest
    ) -> None:
        await ack()
        inbound = from_command(command, now=self._now, fallback_key=replay_key(request))
        if inbound is not None:
            self._spawn(inbound)

    def _spawn(self, inbound: Inbound) -> None:
        if not self._accepting:
            return
        self._tasks.spawn(self._handle(inbound), name=f"slack:{inbound.message.update_key}")

    async def _handle(self, inbound: Inbound) -> None:
        message = inbound.message
        try:
            if message.user_name is None and self.options.lookup_user_names:
                message = replace(message, user_name=await self._user_name(inbound))
            sink = SlackSink(
                self.client,
                inbound.target,
                self.options,
                speller=self._speller,
                streaming=self._streaming,
            )
            await self._pipeline.handle(message, sink)
        except Exception:
            # The pipeline turns errors into replies; this is for the reply itself failing.
            log.exception("Slack turn %s failed", message.update_key)

    # -- Web API helpers -----------------------------------------------------------------------

    async def _check_token(self) -> None:
        try:
            result = await self.client.auth_test()
        except SlackApiError as exc:
            error = _refused("SLACK_BOT_TOKEN", exc)
            log.warning("Slack auth.test failed (%s); continuing", error)
            return
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "Slack Web API unreachable at start-up (%s); continuing", type(exc).__name__
            )
            return
        log.info(
            "Slack bot %s in workspace %s (%s)",
            result.get("user"),
            result.get("team"),
            result.get("team_id"),
        )

    async def _open_socket(self, app_token: str) -> AsyncSocketModeHandler:
        """Connect Socket Mode; a refused app token stops the start (the SDK would retry it
        forever), so it is checked with one apps.connections.open first."""
        # apps.connections.open takes the app-level token, on the same API base as the bot.
        web_client = AsyncWebClient(base_url=self.client.base_url, logger=self.client.logger)
        try:
            await web_client.apps_connections_open(app_token=app_token)
        except SlackApiError as exc:
            error = _refused("SLACK_APP_TOKEN", exc)
            log.warning(
                "Slack apps.connections.open failed (%s); retrying in the background", error
            )
        handler = AsyncSocketModeHandler(
            self.bolt, app_token, logger=self.client.logger, web_client=web_client
        )
        await handler.connect_async()  # type: ignore[no-untyped-call]
        return handler

    async def _user_name(self, inbound: Inbound) -> str | None:
        key = inbound.message.user_id
        if key not in self._names:
            name: str | None = None
            try:
                info = await self.client.users_info(user=inbound.target.user_id)
                user = info.get("user") or {}
                profile = user.get("profile") or {}
                name = (
                    profile.get("display_name") or user.get("real_name") or user.get("name") or None
                )
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                log.debug("users.info failed: %s", exc)
            self._names[key] = name
        return self._names[key]

    async def _download(self, url: str) -> bytes:
        """Fetch a ``url_private`` file; Slack wants the bot token, and we cap the size."""
        limit = self.options.max_download_bytes
        headers = {"Authorization": f"Bearer {self._token}"}
        data = bytearray()
        session = self.client.session or aiohttp.ClientSession()
        try:
            async with session.get(url, headers=headers) as resp:
                resp.raise_for_status()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > limit:
                        raise SwitchboardError(
                            f"Slack file larger than {limit} bytes",
                            user_message=lazy("Sorry, that file is too large."),
                        )
        finally:
            if session is not self.client.session:
                await session.close()
        return bytes(data)


def sink_to(
    client: AsyncWebClient,
    address: ChatAddress,
    options: SlackOptions,
    *,
    speller: Callable[[str], str],
    streaming: StreamingSupport,
) -> SlackSink:
    """A sink writing to ``address`` through ``client`` (the running channel's, or the shell's
    own Web API client).

    Messages outside a turn are personal: a direct message gets them where it asked; a request
    made in a shared channel (answered there only to its author) gets them in the author's
    direct messages with the app.
    """
    team, _, chat = address.chat_key.partition("/")
    user = address.user_id.partition("/")[2] or chat
    channel_id, thread = (chat, address.thread_key or None) if address.is_private else (user, None)
    target = SlackTarget(channel_id=channel_id, team_id=team, user_id=user, thread_ts=thread)
    return SlackSink(client, target, options, speller=speller, streaming=streaming)


def _refused(setting: str, exc: SlackApiError) -> str:
    """The Slack error code; a :class:`ConfigurationError` when it says the token is wrong
    (refuse to start) rather than that Slack is having trouble (go on and retry)."""
    error = str(exc.response.get("error", ""))
    if error in _BAD_TOKEN:
        raise ConfigurationError([f"{setting} was refused by Slack ({error})."]) from None
    return error
