"""The Telegram reply sink: plain replies, files, and streamed assistant answers.

Private chats stream with ``sendMessageDraft`` (an ephemeral, animated preview under one draft
id) and end with one ``sendMessage``; the draft vanishes when the message arrives. Groups have
no drafts, so the answer is posted once and edited in place, no more often than
``Pacing.edit_interval``. Intermediate updates are best effort — after a 429 the stream just
skips updates until ``retry_after`` has passed, since the next update carries the whole text
anyway — while the final delivery waits out every 429 and is never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence

from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramRetryAfter
from aiogram.methods import (
    SendAudio,
    SendChatAction,
    SendDocument,
    SendMessageDraft,
    SendPhoto,
    SendVoice,
)
from aiogram.types import (
    BufferedInputFile,
    FSInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
)

from core.envelope import LinkButton, OutboundFile, ReplyStream
from handlers.telegram.delivery import (
    HTML,
    ChatTarget,
    Delivery,
    is_markup_error,
    is_missing_message,
)
from handlers.telegram.formatting import Chunk, render_markdown, render_plain, utf16_len

log = logging.getLogger(__name__)

CAPTION_LIMIT = 1024
PHOTO_LIMIT_BYTES = 10_000_000
#: Bots may send voice messages and audio files of up to 50 MB (Bot API, sendVoice/sendAudio).
AUDIO_LIMIT_BYTES = 50_000_000
#: sendVoice plays OGG/Opus as a voice message; sendAudio takes MP3 and M4A as a music file.
VOICE_TYPES = frozenset({"audio/ogg", "audio/opus"})
AUDIO_TYPES = frozenset({"audio/mpeg", "audio/mp4", "audio/m4a", "audio/x-m4a"})
EMPTY_ANSWER = "The assistant returned an empty answer."

Clock = Callable[[], float]


class TelegramSink:
    """Replies into one chat. Command output and refusals are plain text (not Markdown: a
    slug like ``post_writer`` must not turn italic); assistant answers are Markdown."""

    def __init__(
        self, delivery: Delivery, target: ChatTarget, monotonic: Clock = time.monotonic
    ) -> None:
        self.delivery = delivery
        self.target = target
        self._monotonic = monotonic
        self._replied = False
        self._stream: _Stream | None = None

    def _quiet(self) -> None:
        """Anything else sent to the chat ends a stream's wait for "typing…": shown after it,
        the indicator would run on for five seconds under a refusal."""
        if self._stream is not None:
            self._stream.cancel_typing()

    async def send_text(self, text: str) -> None:
        self._quiet()
        for chunk in render_plain(text) or render_plain(EMPTY_ANSWER):
            await self.delivery.send(self.target, chunk, html=False, reply=self._take_reply())

    async def send_buttons(self, text: str, buttons: Sequence[LinkButton]) -> None:
        """The text with an inline keyboard of URL buttons (one per row) under its last part."""
        self._quiet()
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text=b.label, url=b.url)] for b in buttons]
        )
        chunks = render_plain(text) or render_plain(EMPTY_ANSWER)
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            await self.delivery.send(
                self.target,
                chunk,
                html=False,
                reply=self._take_reply(),
                keyboard=keyboard if last and buttons else None,
            )

    async def send_file(self, file: OutboundFile) -> None:
        self._quiet()
        caption = file.caption if utf16_len(file.caption) <= CAPTION_LIMIT else ""
        upload: InputFile = (
            FSInputFile(file.path, filename=file.file_name)
            if file.path is not None
            else BufferedInputFile(file.data, filename=file.file_name)
        )
        target = self.target
        sent = False
        if file.mime_type in VOICE_TYPES | AUDIO_TYPES and file.size <= AUDIO_LIMIT_BYTES:
            sent = await self._send_audio(file, upload, caption)
        elif file.is_image and file.size <= PHOTO_LIMIT_BYTES:
            try:
                await self.delivery.call(
                    SendPhoto(
                        chat_id=target.chat_id,
                        photo=upload,
                        caption=caption or None,
                        parse_mode=None,
                        message_thread_id=target.thread_id,
                    )
                )
                sent = True
            except TelegramBadRequest as exc:  # odd dimensions, unsupported format...
                log.info("sendPhoto refused (%s); sending as a document", exc.message)
        if not sent:
            await self.delivery.call(
                SendDocument(
                    chat_id=target.chat_id,
                    document=upload,
                    caption=caption or None,
                    parse_mode=None,
                    message_thread_id=target.thread_id,
                )
            )
        if file.caption and not caption:
            await self.send_text(file.caption)

    async def _send_audio(self, file: OutboundFile, upload: InputFile, caption: str) -> bool:
        """A voice message for OGG/Opus, an audio file for MP3/M4A; False when Telegram refuses
        it (the caller sends a document)."""
        target = self.target
        method: SendVoice | SendAudio = (
            SendVoice(
                chat_id=target.chat_id,
                voice=upload,
                caption=caption or None,
                parse_mode=None,
                message_thread_id=target.thread_id,
            )
            if file.mime_type in VOICE_TYPES
            else SendAudio(
                chat_id=target.chat_id,
                audio=upload,
                caption=caption or None,
                parse_mode=None,
                message_thread_id=target.thread_id,
            )
        )
        try:
            await self.delivery.call(method)
        except TelegramBadRequest as exc:  # VOICE_MESSAGES_FORBIDDEN (privacy), bad format...
            log.info("%s refused (%s); sending as a document", method.__api_method__, exc.message)
            return False
        return True

    async def show_activity(self, action: str) -> None:
        """ "uploading photo…", "recording voice…" while media is made; cosmetic, so a failure
        is ignored."""
        self._quiet()
        with contextlib.suppress(TelegramAPIError):
            await self.delivery.bot(
                SendChatAction(
                    chat_id=self.target.chat_id,
                    action=action,
                    message_thread_id=self.target.thread_id,
                )
            )

    def open_stream(self) -> ReplyStream:
        stream: _DraftStream | _EditStream = (
            _DraftStream(self) if self.target.private else _EditStream(self)
        )
        stream.start_typing()
        self._stream = stream
        return stream

    def _take_reply(self) -> bool:
        """Only the first message of a reply quotes the user's message (groups)."""
        first = not self._replied
        self._replied = True
        return first


class _Stream:
    def __init__(self, sink: TelegramSink) -> None:
        self.sink = sink
        self.delivery = sink.delivery
        self.target = sink.target
        self.text = ""
        self._next_at = 0.0
        self._typing: asyncio.Task[None] | None = None
        self._typing_timer: asyncio.TimerHandle | None = None

    def now(self) -> float:
        return self.sink._monotonic()

    def start_typing(self) -> None:
        """Show "typing…" if the model is still thinking after ``Pacing.typing_after``;
        purely cosmetic, so failures are ignored."""
        loop = asyncio.get_running_loop()
        self._typing_timer = loop.call_later(
            self.delivery.pacing.typing_after, self._begin_typing, loop
        )

    def _begin_typing(self, loop: asyncio.AbstractEventLoop) -> None:
        self._typing_timer = None
        self._typing = loop.create_task(self._send_typing())

    async def _send_typing(self) -> None:
        with contextlib.suppress(TelegramAPIError):
            await self.delivery.bot(
                SendChatAction(
                    chat_id=self.target.chat_id,
                    action="typing",
                    message_thread_id=self.target.thread_id,
                )
            )

    def cancel_typing(self) -> None:
        """Words (or another message) came first: no "typing…" at all."""
        if self._typing_timer is not None:
            self._typing_timer.cancel()
            self._typing_timer = None

    async def _stop_typing(self) -> None:
        self.cancel_typing()
        if self._typing is not None and not self._typing.done():
            # Let it land before the answer, so "typing" never shows after the reply.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._typing, timeout=2)

    def _due(self) -> bool:
        return self.now() >= self._next_at

    def _pause(self, seconds: float) -> None:
        self._next_at = self.now() + seconds

    async def _wait_turn(self) -> None:
        delay = self._next_at - self.now()
        if delay > 0:
            await asyncio.sleep(delay)


class _DraftStream(_Stream):
    """Private chat: paced drafts under one draft id, then the final message(s)."""

    def __init__(self, sink: TelegramSink) -> None:
        super().__init__(sink)
        self.draft_id = secrets.randbelow(2**31 - 2) + 1
        self._drafts = True
        self._shown = ""

    async def append(self, delta: str) -> None:
        self.text += delta
        if not self._drafts or not self._due():
            return
        chunks = render_markdown(self.text)
        if not chunks or chunks[-1].html == self._shown:
            return
        await self._stop_typing()
        # A long answer becomes several messages; the draft previews the one being written.
        shown = chunks[-1].html
        try:
            await self.delivery.bot(
                SendMessageDraft(
                    chat_id=self.target.chat_id,
                    draft_id=self.draft_id,
                    text=shown,
                    parse_mode=HTML,
                    message_thread_id=self.target.thread_id,
                )
            )
        except TelegramRetryAfter as exc:
            self._pause(exc.retry_after)
            return
        except TelegramBadRequest as exc:
            if not is_markup_error(exc):
                self._drafts = False  # e.g. a Bot API server without drafts: just finish
                log.info("drafts unavailable in chat %s: %s", self.target.chat_id, exc.message)
            self._pause(self.delivery.pacing.draft_interval)
            return
        self._shown = shown
        self._pause(self.delivery.pacing.draft_interval)

    async def finish(self, text: str) -> None:
        await self._stop_typing()
        for chunk in render_markdown(text) or render_plain(EMPTY_ANSWER):
            await self.delivery.send(self.target, chunk)

    async def abort(self, message: str) -> None:
        await self._stop_typing()
        await self.sink.send_text(message)


class _EditStream(_Stream):
    """Group chat: post once, edit at most every ``edit_interval``, final edit at the end.

    Past 4096 characters the answer continues in a new message, which is then edited in turn.
    """

    def __init__(self, sink: TelegramSink) -> None:
        super().__init__(sink)
        self._posted: list[tuple[int, str]] = []  # (message_id, html shown)

    async def append(self, delta: str) -> None:
        self.text += delta
        if not self._due():
            return
        try:
            await self._step(render_markdown(self.text))
        except TelegramRetryAfter as exc:
            self._pause(exc.retry_after)

    async def _step(self, chunks: list[Chunk]) -> None:
        """One change per tick: the first chunk that differs from what the chat shows."""
        for index, chunk in enumerate(chunks):
            if index >= len(self._posted):
                await self._post(chunk)
                return
            if self._posted[index][1] != chunk.html:
                await self._edit(index, chunk)
                return

    async def _post(self, chunk: Chunk, *, persistent: bool = False) -> None:
        await self._stop_typing()
        reply = not self._posted and self.sink._take_reply()
        message = await self.delivery.send(self.target, chunk, reply=reply, persistent=persistent)
        self._posted.append((message.message_id, chunk.html))
        self._pause(self.delivery.pacing.edit_interval)

    async def _edit(self, index: int, chunk: Chunk, *, persistent: bool = False) -> None:
        message_id = self._posted[index][0]
        await self.delivery.edit(self.target, message_id, chunk, persistent=persistent)
        self._posted[index] = (message_id, chunk.html)
        self._pause(self.delivery.pacing.edit_interval)

    async def finish(self, text: str) -> None:
        await self._stop_typing()
        chunks = render_markdown(text) or render_plain(EMPTY_ANSWER)
        for index, chunk in enumerate(chunks):
            if index >= len(self._posted):
                await self._post(chunk, persistent=True)
            elif self._posted[index][1] != chunk.html:
                await self._wait_turn()
                try:
                    await self._edit(index, chunk, persistent=True)
                except TelegramBadRequest as exc:
                    if not is_missing_message(exc):
                        raise
                    # Someone deleted the streamed message: deliver the answer anew.
                    message = await self.delivery.send(self.target, chunk)
                    self._posted[index] = (message.message_id, chunk.html)
        for message_id, _ in self._posted[len(chunks) :]:
            await self.delivery.delete(self.target, message_id)

    async def abort(self, message: str) -> None:
        await self._stop_typing()
        if not self._posted:
            await self.sink.send_text(message)
            return
        await self._wait_turn()
        chunk = render_plain(message)[0]
        await self.delivery.edit(self.target, self._posted[0][0], chunk, html=False)
