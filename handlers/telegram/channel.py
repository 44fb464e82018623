"""The Telegram channel: receiving updates (long polling or webhook) and wiring each message to
the pipeline with a :class:`TelegramSink`.

Both modes feed the same aiogram :class:`Dispatcher`, whose one message handler turns a
message into an envelope and calls :meth:`Pipeline.handle`. Exactly-once handling is the
pipeline's (``update_id`` is the envelope's dedup key), so a webhook retried by Telegram, or an
update seen by two processes, is answered once.

Messages of one chat are handled one after another by the pipeline's chat-order middleware.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Literal

from aiogram import Bot, Dispatcher, Router
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Message, TelegramObject, Update
from aiohttp import web
from pydantic import ValidationError

from admin_commands.registry import CommandRegistry
from core.envelope import ChatAddress
from core.errors import UnsupportedInput
from core.i18n import Translators
from handlers.background import BackgroundTasks
from handlers.pipeline import Pipeline
from handlers.telegram.adapter import CHANNEL, BotIdentity, to_envelope
from handlers.telegram.delivery import ChatTarget, Delivery, Pacing
from handlers.telegram.menu import publish_menus
from handlers.telegram.responses import pin_response_models
from handlers.telegram.sink import TelegramSink
from storage.db import Sessions

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message"]
POLLING_TIMEOUT_SECONDS = 25
STOP_TIMEOUT_SECONDS = 60.0

Mode = Literal["polling", "webhook"]


class TelegramChannel:
    name = CHANNEL

    def __init__(
        self,
        bot: Bot,
        pipeline: Pipeline,
        *,
        registry: CommandRegistry,
        sessions: Sessions,
        bot_usernames: MutableMapping[str, str],
        mode: Mode,
        webhook_secret: str | None = None,
        public_base_url: str | None = None,
        pacing: Pacing | None = None,
        polling_timeout: int = POLLING_TIMEOUT_SECONDS,
        routers: Sequence[Router] = (),
        translators: Translators | None = None,
    ) -> None:
        self.bot = bot
        self.pipeline = pipeline
        self._registry = registry
        self._sessions = sessions
        #: For the command menus in each language.
        self._translators = translators
        #: Shared with the commands, which print ``t.me/<bot>`` invite links once it is known.
        self._bot_usernames = bot_usernames
        self.mode = mode
        self._secret = webhook_secret
        self._public_base_url = public_base_url
        self._polling_timeout = polling_timeout
        self.delivery = Delivery(bot, pacing or Pacing())
        # See handlers.telegram.responses: without these, aiogram rebuilds a model per call.
        self._response_models = pin_response_models()
        # No handler keeps conversation state in aiogram's FSM (ours lives in the database), so
        # its per-update middleware (a storage key, a state read) is left out.
        self.dispatcher = Dispatcher(disable_fsm=True)
        # Every update aiogram's polling starts as a task (turns, payments) is kept until done,
        # so stop() and drain() wait for a payment being credited as they do for a turn.
        self.dispatcher.update.outer_middleware(self._track_update)
        # Routers given (Stars payments) see updates first; every other message is a turn.
        for router in routers:
            self.dispatcher.include_router(router)
        turns = Router(name="turns")
        turns.message.register(self._on_message)
        self.dispatcher.include_router(turns)
        #: Payment routers also need Telegram's pre-checkout queries.
        self.allowed_updates = ALLOWED_UPDATES + (["pre_checkout_query"] if routers else [])
        self.me: BotIdentity | None = None
        self._polling: asyncio.Task[None] | None = None
        self._tasks = BackgroundTasks("telegram")
        self._stopping = False

    # -- Channel protocol -----------------------------------------------------------------------

    def install_routes(self, app: web.Application) -> None:
        if self.mode == "webhook":
            app.router.add_post(WEBHOOK_PATH, self._webhook)

    async def start(self) -> None:
        """Learn who we are, publish the menus, then start receiving.

        In polling mode a webhook left over from an earlier deployment would make getUpdates
        fail, so it is deleted (keeping pending updates: nothing sent meanwhile is lost).
        """
        user = await self.bot.me()
        self.me = BotIdentity(user.id, user.username or "")
        if user.username:
            self._bot_usernames[CHANNEL] = user.username
        await publish_menus(self.bot, self._registry, self._sessions, self._translators)
        if self.mode == "webhook":
            await self._register_webhook()
            return
        await self.bot.delete_webhook(drop_pending_updates=False)
        self._polling = asyncio.create_task(
            self.dispatcher.start_polling(
                self.bot,
                polling_timeout=self._polling_timeout,
                handle_signals=False,
                close_bot_session=False,
                allowed_updates=self.allowed_updates,
            )
        )

    async def stop(self) -> None:
        """Stop receiving, let the turns already started finish (they still need the bot's
        HTTP session to deliver their answers), then close the session."""
        self._stopping = True
        if self._polling is not None:
            with contextlib.suppress(RuntimeError):  # polling has not got going yet
                await self.dispatcher.stop_polling()
            if not self._polling.done():
                self._polling.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._polling
            self._polling = None
        if not await self._tasks.drain(STOP_TIMEOUT_SECONDS):
            log.warning("%d Telegram updates still running at shutdown", len(self._tasks))
        await self.bot.session.close()

    async def drain(self, seconds: float) -> bool:
        """Wait until every update this channel started has been handled; False if ``seconds``
        ran out first."""
        return await self._tasks.drain(seconds)

    def sink_for(self, address: ChatAddress) -> TelegramSink:
        """Writes to a chat outside of any turn (the outbox's messages)."""
        return sink_to(self.delivery, address)

    # -- receiving ------------------------------------------------------------------------------

    async def _register_webhook(self) -> None:
        if not self._public_base_url:
            log.info(
                "TELEGRAM_MODE=webhook without PUBLIC_BASE_URL: expecting the webhook to "
                "be registered elsewhere, at %s",
                WEBHOOK_PATH,
            )
            return
        url = self._public_base_url.rstrip("/") + WEBHOOK_PATH
        await self.bot.set_webhook(
            url,
            secret_token=self._secret,
            allowed_updates=self.allowed_updates,
            drop_pending_updates=False,
        )
        log.info("Telegram webhook set to %s", url)

    async def _webhook(self, request: web.Request) -> web.Response:
        """Telegram's POST. Answered at once (the turn runs in the background): Telegram
        waits for the answer before sending more, and retries what it did not get."""
        given = request.headers.get(SECRET_HEADER, "")
        if not self._secret or not hmac.compare_digest(given.encode(), self._secret.encode()):
            return web.Response(status=401, text="unauthorized")
        if self._stopping:
            return web.Response(status=503, text="shutting down")  # Telegram will retry
        try:
            update = Update.model_validate(await request.json(), context={"bot": self.bot})
        except (ValueError, ValidationError, RecursionError) as exc:
            # Not JSON, not an update, or nested deeper than the parser goes (RecursionError):
            # a 400 Telegram will not retry, one log line, nothing run.
            log.info("Telegram webhook body refused: %s", type(exc).__name__)
            return web.Response(status=400, text="bad update")
        self._tasks.spawn(self.dispatcher.feed_update(self.bot, update))
        return web.Response(text="ok")

    async def _track_update(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.track(task)
        return await handler(event, data)

    async def _on_message(self, message: Message, event_update: Update) -> None:
        """The dispatcher's only handler: one Telegram message → one pipeline run."""
        me = self.me or await self._identity()
        envelope = to_envelope(message, event_update.update_id, me, self._download)
        if envelope is None:
            return
        target = ChatTarget(
            chat_id=message.chat.id,
            private=envelope.is_private,
            thread_id=message.message_thread_id if message.is_topic_message else None,
            reply_to=None if envelope.is_private else message.message_id,
        )
        await self.pipeline.handle(envelope, TelegramSink(self.delivery, target))

    async def _identity(self) -> BotIdentity:
        user = await self.bot.me()
        self.me = BotIdentity(user.id, user.username or "")
        return self.me

    async def _download(self, file_id: str) -> bytes:
        """Fetch an attachment through the configured Bot API server (getFile + file URL)."""
        try:
            buffer = await self.bot.download(file_id)
        except TelegramBadRequest as exc:
            if "too big" in exc.message.lower():
                raise UnsupportedInput(
                    "that file is too large for me to download (20 MB at most)."
                ) from exc
            raise
        assert buffer is not None
        return buffer.read()


def sink_to(delivery: Delivery, address: ChatAddress) -> TelegramSink:
    """A sink writing to the chat at ``address`` (its key is the chat id, its thread key the
    forum topic), through ``delivery``: the running channel's, or the shell's own Bot API
    client."""
    thread = int(address.thread_key) if address.thread_key.isdigit() else None
    target = ChatTarget(chat_id=int(address.chat_key), private=address.is_private, thread_id=thread)
    return TelegramSink(delivery, target)


def api_server(base: str | None) -> TelegramAPIServer:
    """``TELEGRAM_API_BASE`` (a self-hosted Bot API server, or the tests' fake) or the official."""
    return TelegramAPIServer.from_base(base) if base else PRODUCTION
