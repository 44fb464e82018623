"""Where a turn's output goes in Slack: the thread of the message that started it, or the
``response_url`` of a slash command.

Replies stream with ``chat.startStream``/``appendStream``/``stopStream``. When the workspace or
token cannot stream (unknown method, missing scope, an expired stream), the same reply continues
as a posted message edited with ``chat.update`` at most once per ``update_interval``; the final
text is always delivered, rate limits included (see :mod:`handlers.slack.ratelimit`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from core.envelope import LinkButton, OutboundFile, ReplyStream
from handlers.slack.options import SlackOptions
from handlers.slack.ratelimit import RateLimiter, retry_after
from handlers.slack.text import FENCE, FENCE_RESERVE, escape, find_cut, open_fence, split_text

log = logging.getLogger(__name__)

#: A slash command's response_url accepts this many messages (Slack's documented limit).
RESPONSE_URL_USES = 5
EMPTY_REPLY = "_(no answer)_"
#: Errors meaning "this token/workspace cannot stream at all": stop trying for this process.
STREAMING_UNSUPPORTED = frozenset(
    {
        "unknown_method",
        "method_deprecated",
        "not_allowed_token_type",
        "missing_scope",
        "feature_not_enabled",
        "not_supported",
        "invalid_auth_method",
    }
)
#: Errors of a file upload that mean "not here", answered with an explanation.
FILE_NOT_HERE = frozenset({"not_in_channel", "channel_not_found", "access_denied"})

SlackCall = Callable[[], Awaitable[AsyncSlackResponse]]
#: Channel ids of conversations with other people (public ``C``, private ``G``), where a reply
#: meant for one person is sent ephemeral.
SHARED_CHANNEL_PREFIXES = ("C", "G")
#: Block Kit limits: a section's text, a button's text.
SECTION_LIMIT = 3000
BUTTON_TEXT_LIMIT = 75


def link_blocks(text: str, buttons: Sequence[LinkButton]) -> list[dict[str, Any]]:
    """A plain-text section and an actions block of URL buttons (Slack opens the URL; the
    click's ``block_actions`` is only acknowledged)."""
    return [
        {"type": "section", "text": {"type": "plain_text", "text": text}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": b.label[:BUTTON_TEXT_LIMIT]},
                    "url": b.url,
                    "action_id": f"link-{index}",
                }
                for index, b in enumerate(buttons[:25])
            ],
        },
    ]


@dataclass(frozen=True, slots=True)
class SlackTarget:
    """Where to answer: ``thread_ts`` for conversations, ``response_url`` for slash commands."""

    channel_id: str
    team_id: str
    #: The Slack user the reply is for (chat streams in channels need a recipient).
    user_id: str
    thread_ts: str | None = None
    response_url: str | None = None


@dataclass(slots=True)
class StreamingSupport:
    """Shared by every reply of a channel: once Slack says it cannot stream, stop asking."""

    available: bool = True


@dataclass(slots=True)
class _Shown:
    ts: str
    text: str


class SlackSink:
    def __init__(
        self,
        client: AsyncWebClient,
        target: SlackTarget,
        options: SlackOptions,
        *,
        speller: Callable[[str], str] = str,
        streaming: StreamingSupport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.target = target
        self.options = options
        self.speller = speller
        self.streaming = streaming if streaming is not None else StreamingSupport()
        self.monotonic = monotonic
        self.limiter = RateLimiter(
            max_wait=options.max_rate_limit_wait,
            max_attempts=options.max_attempts,
            monotonic=monotonic,
        )
        self._responses_left = RESPONSE_URL_USES if target.response_url else 0

    def plain(self, text: str) -> str:
        """Our own messages (command output, notices) as Slack plain ``text``.

        They are sent with ``mrkdwn`` off: an invite code like ``_a1_b2`` must arrive as typed,
        not half in italics.
        """
        return escape(self.speller(text))

    async def send_text(self, text: str) -> None:
        for part in split_text(self.plain(text) or " ", self.options.message_limit):
            if await self._respond(part):
                continue
            await self.post(text=part, mrkdwn=False)

    async def send_buttons(self, text: str, buttons: Sequence[LinkButton]) -> None:
        """Block Kit link buttons under the text. In a shared channel only the person who
        asked sees them (a slash command's response, or an ephemeral message)."""
        plain = self.plain(text)
        if len(plain) > SECTION_LIMIT:
            await self.send_text(text)
            plain = "Links:"
        fallback = "\n".join([plain, *(f"{b.label}: {b.url}" for b in buttons)])
        blocks = link_blocks(plain, buttons)
        if await self._respond_with({"text": fallback, "blocks": blocks}):
            return
        target = self.target
        if target.channel_id[:1] in SHARED_CHANNEL_PREFIXES:
            call = partial(
                self.client.chat_postEphemeral,
                channel=target.channel_id,
                user=target.user_id,
                thread_ts=target.thread_ts,
                text=fallback,
                blocks=blocks,
            )
            await self.limiter.required(call)
            return
        await self.post(text=fallback, blocks=blocks)

    async def send_file(self, file: OutboundFile) -> None:
        target = self.target
        upload = partial(
            self.client.files_upload_v2,
            channel=target.channel_id,
            thread_ts=target.thread_ts,
            # A path is read by the SDK itself (an export is not loaded here first).
            file=str(file.path) if file.path is not None else file.data,
            filename=file.file_name,
            title=file.file_name,
            initial_comment=file.caption or None,
        )
        try:
            await self.limiter.required(upload)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error not in FILE_NOT_HERE:
                raise
            log.warning("file upload to %s refused: %s", target.channel_id, error)
            await self.send_text(
                f"I could not post the file {file.file_name} in this "
                "conversation. Invite the app here, or run the command in a "
                "direct message with it."
            )

    def open_stream(self) -> ReplyStream:
        return SlackReplyStream(self)

    async def post(self, **content: Any) -> _Shown:
        """chat.postMessage in the target thread (required: waits out rate limits)."""
        call = partial(
            self.client.chat_postMessage,
            channel=self.target.channel_id,
            thread_ts=self.target.thread_ts,
            **content,
        )
        response = await self.limiter.required(call)
        return _Shown(
            str(response["ts"]), str(content.get("markdown_text") or content.get("text") or "")
        )

    async def _respond(self, part: str) -> bool:
        """Answer through the slash command's response_url; False when it is unusable."""
        return await self._respond_with({"text": part, "mrkdwn": False})

    async def _respond_with(self, payload: dict[str, Any]) -> bool:
        url = self.target.response_url
        if url is None or self._responses_left <= 0:
            return False
        self._responses_left -= 1
        try:
            webhook = AsyncWebhookClient(url, session=self.client.session)
            response = await webhook.send_dict({**payload, "response_type": "ephemeral"})
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("response_url failed (%s); posting instead", type(exc).__name__)
            return False
        if response.status_code != 200:
            log.warning("response_url answered %s; posting instead", response.status_code)
            return False
        return True


class SlackReplyStream:
    """One streamed answer, kept within Slack's per-message and per-call limits.

    ``_received`` is the answer so far; in streaming mode ``_sent`` of it is on screen in
    ``_messages`` (a long answer rotates to a new streamed message, closing and reopening a code
    block it cuts). In post mode every flush reconciles ``_messages`` with the answer split at
    ``message_limit``, editing only what changed.
    """

    def __init__(self, sink: SlackSink) -> None:
        self._sink = sink
        self._opts = sink.options
        self._streaming = sink.streaming.available and sink.target.thread_ts is not None
        self._received = ""
        self._sent = 0
        self._messages: list[_Shown] = []
        self._live = False
        self._reopen = ""
        self._last_call = float("-inf")

    async def append(self, delta: str) -> None:
        self._received += delta
        interval = self._opts.stream_interval if self._streaming else self._opts.update_interval
        if self._sink.monotonic() - self._last_call < interval:
            return
        await self._flush(final=False)

    async def finish(self, text: str) -> None:
        if not text.strip():
            text = EMPTY_REPLY
        if self._streaming and text.startswith(self._received):
            self._received = text
            await self._flush(final=True)
            return
        # What is on screen is not a prefix of the answer (the channel failed mid-stream, or
        # the provider's final text differs): rewrite the messages with edits.
        self._received = text
        await self._leave_stream()
        await self._flush_posts(final=True)

    async def abort(self, message: str) -> None:
        text = self._sink.plain(message)
        await self._leave_stream()
        if not self._messages:
            await self._sink.post(text=text, mrkdwn=False)
            return
        first, *rest = self._messages
        await self._sink.limiter.required(
            partial(
                self._sink.client.chat_update,
                channel=self._sink.target.channel_id,
                ts=first.ts,
                text=text,
            )
        )
        first.text = text
        await self._delete(rest)

    # -- streaming ---------------------------------------------------------------------------

    async def _flush(self, *, final: bool) -> None:
        if self._streaming:
            try:
                await self._flush_stream(final=final)
                return
            except SlackApiError as exc:
                if retry_after(exc) is not None:
                    raise
                error = str(exc.response.get("error", ""))
                if error in STREAMING_UNSUPPORTED:
                    self._sink.streaming.available = False
                log.info("Slack streaming failed (%s); posting and editing instead", error)
                await self._leave_stream()
        await self._flush_posts(final=final)

    async def _call(self, call: SlackCall, *, final: bool) -> AsyncSlackResponse | None:
        limiter = self._sink.limiter
        response = await (limiter.required(call) if final else limiter.optional(call))
        if response is not None:
            self._last_call = self._sink.monotonic()
        return response

    async def _flush_stream(self, *, final: bool) -> None:
        client, target = self._sink.client, self._sink.target
        limit = self._opts.stream_message_limit - FENCE_RESERVE
        while True:
            if not self._live and self._messages:
                # A continuation message does not start with the break we cut at.
                while self._received[self._sent : self._sent + 1] in (" ", "\n"):
                    self._sent += 1
            pending = self._received[self._sent :]
            current = self._messages[-1].text if self._live else self._reopen
            cut = _rotation_cut(current, pending, limit)
            rotate = cut is not None
            piece = pending if cut is None else pending[:cut]
            ending = rotate or final
            if not (piece or ending):
                return
            if not self._live:
                text = self._reopen + piece
                assert target.thread_ts is not None
                response = await self._call(
                    partial(
                        client.chat_startStream,
                        channel=target.channel_id,
                        thread_ts=target.thread_ts,
                        recipient_team_id=target.team_id,
                        recipient_user_id=target.user_id,
                        markdown_text=text or None,
                    ),
                    final=final,
                )
                if response is None:
                    return
                self._messages.append(_Shown(str(response["ts"]), text))
                self._live, self._reopen = True, ""
                self._sent += len(piece)
                piece = ""
            elif piece and not ending:
                response = await self._call(
                    partial(
                        client.chat_appendStream,
                        channel=target.channel_id,
                        ts=self._messages[-1].ts,
                        markdown_text=piece,
                    ),
                    final=final,
                )
                if response is None:
                    return
                self._messages[-1].text += piece
                self._sent += len(piece)
            if not ending:
                return
            # The message's last piece rides on chat.stopStream, with a closing fence if the
            # cut falls inside a code block (reopened at the top of the next message).
            shown = self._messages[-1]
            language = open_fence(shown.text + piece) if rotate else None
            tail = piece + ("\n" + FENCE if language is not None else "")
            response = await self._call(
                partial(
                    client.chat_stopStream,
                    channel=target.channel_id,
                    ts=shown.ts,
                    markdown_text=tail or None,
                ),
                final=final,
            )
            if response is None:
                return
            shown.text += tail
            self._sent += len(piece)
            self._live = False
            self._reopen = f"{FENCE}{language}\n" if language is not None else ""
            if not rotate:
                return

    async def _leave_stream(self) -> None:
        """Switch this reply to post + edit; close an open stream if Slack still lets us."""
        if self._live:
            try:
                await self._sink.client.chat_stopStream(
                    channel=self._sink.target.channel_id, ts=self._messages[-1].ts
                )
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                log.debug("could not stop the stream: %s", exc)
        self._streaming = self._live = False

    # -- post + edit ---------------------------------------------------------------------------

    async def _flush_posts(self, *, final: bool) -> None:
        client, target = self._sink.client, self._sink.target
        parts = split_text(self._received, self._opts.message_limit) if self._received else []
        for index, part in enumerate(parts):
            if index < len(self._messages):
                shown = self._messages[index]
                if shown.text == part:
                    continue
                call = partial(
                    client.chat_update, channel=target.channel_id, ts=shown.ts, markdown_text=part
                )
                if await self._call(call, final=final) is None:
                    return
                shown.text = part
            else:
                call = partial(
                    client.chat_postMessage,
                    channel=target.channel_id,
                    thread_ts=target.thread_ts,
                    markdown_text=part,
                )
                response = await self._call(call, final=final)
                if response is None:
                    return
                self._messages.append(_Shown(str(response["ts"]), part))
        if final:
            await self._delete(self._messages[len(parts) :])
            del self._messages[len(parts) :]

    async def _delete(self, messages: list[_Shown]) -> None:
        """Best effort: leftovers of a longer draft are removed, a failure is only logged."""
        for shown in messages:
            try:
                await self._sink.client.chat_delete(
                    channel=self._sink.target.channel_id, ts=shown.ts
                )
            except SlackApiError as exc:
                log.info("could not delete a leftover message: %s", exc.response.get("error"))


def _rotation_cut(current: str, pending: str, limit: int) -> int | None:
    """Where in ``pending`` the streamed message ``current`` should end, or None to go on.

    Text already streamed cannot be taken back, so a break is looked for as the message nears
    its limit (the last fifth): the first line break there ends it; only a message that would
    overflow is cut harder (at a space, or mid-word as a last resort).
    """
    total = len(current) + len(pending)
    if total > limit:
        return find_cut(current + pending, limit, len(current)) - len(current)
    if total > limit * 4 // 5:
        index = pending.rfind("\n")
        if index >= 0 and len(current) + index > limit * 4 // 5:
            return index
    return None
