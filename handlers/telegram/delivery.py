"""Bot API calls that must arrive: flood control honoured, markup problems survived.

Telegram answers 429 with ``retry_after`` when a chat or the bot sends too fast; the call is
then simply not done, so waiting and repeating the same call can neither lose nor duplicate
anything. Intermediate stream updates do not use this (a later update supersedes them); the
final message and command replies do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter, TelegramServerError
from aiogram.methods import (
    DeleteMessage,
    EditMessageText,
    SendMessage,
    TelegramMethod,
)
from aiogram.types import InlineKeyboardMarkup, Message, ReplyParameters

from handlers.telegram.formatting import Chunk

log = logging.getLogger(__name__)

T = TypeVar("T")
HTML = "HTML"
_SERVER_ERROR_RETRIES = 2


@dataclass(frozen=True, slots=True)
class Pacing:
    """How often a stream may touch a chat, and how hard a final delivery tries."""

    #: Seconds between ``sendMessageDraft`` calls in a private chat.
    draft_interval: float = 0.4
    #: Seconds of silence after which a reply being prepared shows "typing…": most answers
    #: start sooner, and their first words need neither the call nor to wait for it to land.
    typing_after: float = 0.5
    #: Seconds between calls that change a group message (Telegram allows ~20 a minute there).
    edit_interval: float = 1.5
    #: Attempts for one call that keeps getting 429 before giving up.
    max_attempts: int = 8


@dataclass(frozen=True, slots=True)
class ChatTarget:
    """Where replies go: the chat, the forum topic, and (groups) the message answered."""

    chat_id: int
    private: bool
    thread_id: int | None = None
    reply_to: int | None = None


def is_markup_error(exc: TelegramBadRequest) -> bool:
    return "can't parse entities" in exc.message.lower()


def is_not_modified(exc: TelegramBadRequest) -> bool:
    return "message is not modified" in exc.message.lower()


def is_missing_message(exc: TelegramBadRequest) -> bool:
    return "message to edit not found" in exc.message.lower()


class Delivery:
    """Sends and edits messages for one bot with retries and the plain-text fallback."""

    def __init__(
        self, bot: Bot, pacing: Pacing, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        self.bot = bot
        self.pacing = pacing
        self._sleep = sleep

    async def call(self, method: TelegramMethod[T], *, persistent: bool = True) -> T:
        """Run ``method``, waiting out every 429 (``retry_after``) and a few 5xx answers.

        ``persistent=False`` is for updates a later one supersedes: errors go to the caller.
        """
        if not persistent:
            return await self.bot(method)
        server_errors = 0
        for attempt in range(1, self.pacing.max_attempts + 1):
            try:
                return await self.bot(method)
            except TelegramRetryAfter as exc:
                if attempt == self.pacing.max_attempts:
                    raise
                log.info(
                    "flood control on %s: retrying in %ss", method.__api_method__, exc.retry_after
                )
                await self._sleep(exc.retry_after)
            except TelegramServerError:
                server_errors += 1
                if server_errors > _SERVER_ERROR_RETRIES or attempt == self.pacing.max_attempts:
                    raise
                await self._sleep(0.5 * server_errors)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _formatted(
        self,
        build: Callable[[str, str | None], TelegramMethod[T]],
        chunk: Chunk,
        *,
        html: bool,
        persistent: bool,
    ) -> T:
        """Call ``build(chunk.html, "HTML")``; if Telegram rejects the markup, call
        ``build(chunk.plain, None)`` instead, so a formatting slip never loses a message."""
        if html:
            try:
                return await self.call(build(chunk.html, HTML), persistent=persistent)
            except TelegramBadRequest as exc:
                if not is_markup_error(exc):
                    raise
                log.warning("Telegram rejected the markup, using plain text: %s", exc.message)
        return await self.call(build(chunk.plain, None), persistent=persistent)

    async def send(
        self,
        target: ChatTarget,
        chunk: Chunk,
        *,
        html: bool = True,
        reply: bool = False,
        persistent: bool = True,
        keyboard: InlineKeyboardMarkup | None = None,
    ) -> Message:
        """Send one chunk; if Telegram rejects the markup, send the same text unformatted."""
        reply_parameters = (
            ReplyParameters(message_id=target.reply_to, allow_sending_without_reply=True)
            if reply and target.reply_to is not None
            else None
        )

        def build(text: str, parse_mode: str | None) -> SendMessage:
            return SendMessage(
                chat_id=target.chat_id,
                text=text,
                parse_mode=parse_mode,
                message_thread_id=target.thread_id,
                reply_parameters=reply_parameters,
                reply_markup=keyboard,
            )

        return await self._formatted(build, chunk, html=html, persistent=persistent)

    async def edit(
        self,
        target: ChatTarget,
        message_id: int,
        chunk: Chunk,
        *,
        html: bool = True,
        persistent: bool = True,
    ) -> None:
        """Replace a message's text; an unchanged text is not an error."""

        def build(text: str, parse_mode: str | None) -> EditMessageText:
            return EditMessageText(
                chat_id=target.chat_id, message_id=message_id, text=text, parse_mode=parse_mode
            )

        try:
            await self._formatted(build, chunk, html=html, persistent=persistent)
        except TelegramBadRequest as exc:
            if not is_not_modified(exc):
                raise

    async def delete(self, target: ChatTarget, message_id: int) -> None:
        try:
            await self.call(DeleteMessage(chat_id=target.chat_id, message_id=message_id))
        except TelegramBadRequest as exc:
            log.info("could not delete message %s: %s", message_id, exc.message)
