"""A local fake LLM API speaking the real OpenAI and Anthropic wire protocols.

``FakeLLMServer`` is a real aiohttp server on ``127.0.0.1`` (port 0) that the official SDKs talk to
over HTTP, streaming (server-sent events) and not:

- ``POST /v1/responses``               OpenAI Responses API
- ``POST /v1/chat/completions``        OpenAI Chat Completions (``stream_options.include_usage``)
- ``POST /v1/messages``                Anthropic Messages API
- ``POST /v1/audio/transcriptions``    OpenAI audio transcription (multipart)
- ``POST /v1/images/generations``      OpenAI Images API (b64 PNG + GPT Image usage)
- ``POST /v1/audio/speech``            OpenAI text to speech (binary audio)

Point ``openai.AsyncOpenAI(base_url=server.base_url)`` and
``anthropic.AsyncAnthropic(base_url=server.anthropic_base_url)`` at it.

Replies
    ``server.reply_text`` (default ``"Hello from the fake model."``) or, when set,
    ``server.reply_fn(request_json) -> str``. A reply longer than the request's max output tokens
    (``max_output_tokens`` / ``max_completion_tokens`` / ``max_tokens``, counted in words, see
    below) is cut and reported as truncated (``length`` / ``max_tokens`` / Responses
    ``incomplete``), as a real model would. Streams send
    ``server.chunk_size`` characters per delta, ``server.delay`` seconds apart.

Reported usage (deterministic, the same rule for all three protocols)
    - ``input``  = whitespace-separated words of all input text (system prompt / instructions and
      every message) + 3 per message (the system prompt counts as one message)
      + ``IMAGE_TOKENS`` (85) per image;
    - ``cached`` = ``min(server.cached_tokens, input)`` (default 0), part of ``input``;
    - ``reasoning`` = ``server.reasoning_tokens`` (default 0), at most the max output tokens;
    - ``output`` = words of the reply + ``reasoning`` (reasoning is part of ``output``); the
      reply is cut so that ``output`` never exceeds the request's max output tokens.

    - ``cache_write`` = ``min(server.cache_write_tokens, input - cached)`` (default 0), part of
      ``input`` too.

    On the wire, by default, the plainest shape real servers send: input and output counts and
    a total, no details (OpenAI's Responses API before 2025, most compatible servers, Anthropic
    before prompt caching). A detail is added when it is not zero, or always with
    ``server.usage_details = True`` (OpenAI's 2025 shapes); ``server.usage_shape = "2026"`` adds
    the Responses API's ``input_tokens_details.cache_write_tokens`` (which the newest SDK
    requires). OpenAI reports ``input_tokens``/``prompt_tokens`` = input with ``cached_tokens``
    = cached and ``cache_write_tokens`` = cache writes; Anthropic reports ``input_tokens`` =
    input - cached - cache writes, ``cache_read_input_tokens`` = cached,
    ``cache_creation_input_tokens`` = cache writes (so a client that sums the three gets
    ``input`` back). ``server.usage_override`` (a JSON object) is sent instead of the computed
    usage, as a server with its own conventions would (Anthropic: in ``message_delta``);
    ``server.send_usage = False`` sends none (Chat Completions: no usage chunk; Responses:
    ``usage: null``; Anthropic: ``message_delta`` without it, ``message_start`` as always).
    ``server.last_usage`` holds the last computed usage as ``{"input": .., "cached": ..,
    "cache_write": .., "output": .., "reasoning": ..}``; ``server.usage_for(json)`` computes
    ``(input, output)`` for a request body without sending anything.

Replays
    ``replay_next(body)`` answers the next call of any endpoint with exactly ``body`` (bytes of
    a recorded real response, ``text/event-stream``), whatever was asked.

Transcriptions
    Return ``{"text": server.transcript_text}`` (default ``"transcribed voice message"``). Models
    starting with ``whisper`` report ``{"type": "duration", "seconds": 1.0}`` usage (no tokens);
    other models report tokens: input = ``max(1, len(audio) // 1000)``, output = transcript words.

Images
    ``/v1/images/generations`` answers ``{"created", "data": [{"b64_json"}], "usage"}`` with
    ``server.image_png`` (a valid 2×2 red PNG by default). Usage as GPT Image reports it:
    input = words of the prompt (text tokens), output = ``server.image_tokens`` (1056, a
    medium square); models starting with ``dall-e`` report no usage (and get ``revised_prompt``),
    as does any model with ``server.send_usage = False``. A Responses request with an
    ``image_generation`` tool streams ``response.image_generation_call.in_progress`` /
    ``generating`` / ``completed`` and ``response.output_item.done`` with the
    ``image_generation_call`` item (``result`` = the PNG in base64, ``revised_prompt``), then
    ``response.completed`` whose ``usage`` is the chat model's and ``tool_usage.image_gen`` the
    image's (``image_tokens`` output).

Speech
    ``/v1/audio/speech`` answers ``server.speech_audio`` (an OGG page header, ``audio/ogg``) for
    ``response_format`` ``opus``; ``server.speech_format`` forces another answer (``"mp3"``:
    ``audio/mpeg`` bytes starting with ``ID3``), as servers that cannot make Opus do.

Failures on demand (each applies to the next N calls of any endpoint)
    ``fail_next(status, count, message=None)`` answers an HTTP error with the provider's JSON
    error body;
    ``timeout_next(count)`` hangs (``server.hang_seconds``, default 30 s, or until ``stop``);
    ``cut_next(count)`` sends a few deltas then drops the connection without the final event;
    ``break_stream_next(kind, count, message=None)`` (streamed Responses calls only) sends
    ``cut_after_deltas`` deltas, then one bad event instead of the rest, and ends the body
    normally: ``"failed"`` (``response.failed`` with an error), ``"error"`` (an ``error``
    event), ``"error_object"`` (``{"error": {...}}`` without a type) or ``"garbled"`` (data that
    is not JSON); ``"end"`` sends no bad event, just ends the body without the final one.

Wire details
    ``server.raw_unicode = True`` sends non-ASCII characters in stream JSON as raw UTF-8 (which
    JSON allows, U+2028 and U+0085 included) instead of ``\\u`` escapes.
    ``server.response_extra`` is merged into the final Responses ``Response`` object (fields a
    newer API might add, or break).

Validation, as the real APIs do it
    A request without an API key (``Authorization: Bearer`` or ``x-api-key``) gets 401; missing
    required fields get 400; ``/v1/messages`` rejects ``temperature``/``top_p``/``top_k`` under
    ``anthropic-version: 2026-10-21`` (what the 2.x SDK sends) and penalties always.

Requests are recorded in ``server.requests`` (path, JSON body or form fields, headers, files);
``server.last_request`` and ``server.model_seen`` are shortcuts for the last one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from multidict import CIMultiDictProxy

IMAGE_TOKENS = 85
#: A 2×2 red PNG (what "a red square" comes back as).
RED_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGP4z8AARAwQCgAf7gP9i18U1AAAAABJRU5ErkJggg=="
)
#: The start of an OGG/Opus file (an ``OggS`` page with an ``OpusHead``), enough to be told apart.
OGG_AUDIO = b"OggS\x00\x02" + bytes(20) + b"\x01\x13OpusHead\x01\x01" + bytes(64)
MP3_AUDIO = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(64)
TOKENS_PER_MESSAGE = 3
DEFAULT_REPLY = "Hello from the fake model."
DEFAULT_TRANSCRIPT = "transcribed voice message"
ANTHROPIC_API_VERSION = "2026-10-21"

JSON = dict[str, Any]
StreamBreak = Literal["failed", "error", "error_object", "garbled", "end"]

_WORD = re.compile(r"\S+")
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    json: JSON
    headers: CIMultiDictProxy[str]
    #: Raw file uploads of multipart requests (field name -> bytes).
    files: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class _Reply:
    text: str
    truncated: bool
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cache_write_tokens: int = 0


class _Cut(Exception):
    """Raised inside a streaming handler to drop the connection mid-stream."""


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


def _first_words(text: str, limit: int) -> str:
    """The prefix of ``text`` holding its first ``limit`` words (original spacing kept)."""
    if limit <= 0:
        return ""
    matches = list(_WORD.finditer(text))
    if len(matches) <= limit:
        return text
    return text[: matches[limit - 1].end()]


def _content_cost(content: Any) -> int:
    """Words of text parts + IMAGE_TOKENS per image part, for any of the three protocols."""
    if isinstance(content, str):
        return count_words(content)
    total = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                total += count_words(part["text"])
            elif part.get("type") in {"image", "image_url", "input_image"}:
                total += IMAGE_TOKENS
    return total


def input_tokens_for(body: Mapping[str, Any]) -> int:
    """Input tokens of a request body of any of the three protocols (see module docstring)."""
    total = 0
    for key in ("instructions", "system"):  # Responses / Anthropic system prompt
        if body.get(key):
            total += TOKENS_PER_MESSAGE + _content_cost(body[key])
    items = body.get("messages", body.get("input", []))
    if isinstance(items, str):  # Responses API accepts a bare string as input
        items = [{"role": "user", "content": items}]
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            total += TOKENS_PER_MESSAGE + _content_cost(item.get("content", ""))
    return total


def _max_output(body: Mapping[str, Any]) -> int | None:
    for key in ("max_output_tokens", "max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int):
            return value
    return None


def _sse(event: str | None, data: JSON | str, ensure_ascii: bool = True) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=ensure_ascii)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


class FakeLLMServer:
    def __init__(self) -> None:
        self.reply_text: str = DEFAULT_REPLY
        self.reply_fn: Callable[[JSON], str] | None = None
        #: Seconds to wait before answering a given request body (per-request latency).
        self.pause_fn: Callable[[JSON], float] | None = None
        self.transcript_text: str = DEFAULT_TRANSCRIPT
        self.chunk_size: int = 4
        self.delay: float = 0.0
        self.cached_tokens: int = 0
        self.cache_write_tokens: int = 0
        #: Send every usage detail, zero or not (OpenAI's own shape).
        self.usage_details: bool = False
        #: ``"2026"``: the Responses usage also carries ``cache_write_tokens``.
        self.usage_shape: str = "plain"
        #: Sent as the usage object instead of the computed one.
        self.usage_override: JSON | None = None
        #: False: no usage at all (a server ignoring ``include_usage``; Responses ``usage: null``;
        #: Anthropic ``message_delta`` without usage).
        self.send_usage: bool = True
        #: Extra input tokens reported beyond the real count (a provider over-reporting usage).
        self.extra_input_tokens: int = 0
        self.reasoning_tokens: int = 0
        self.hang_seconds: float = 30.0
        #: Deltas a cut stream sends before dropping the connection.
        self.cut_after_deltas: int = 2
        #: Non-ASCII characters raw (UTF-8) in streamed JSON instead of ``\u`` escapes.
        self.raw_unicode: bool = False
        #: Merged into the final Responses ``Response`` object.
        self.response_extra: JSON = {}
        self.image_png: bytes = RED_PNG
        self.image_tokens: int = 1056
        self.speech_audio: bytes = OGG_AUDIO
        #: ``None``: answer the format asked for; ``"mp3"``: always MP3.
        self.speech_format: str | None = None
        self.requests: list[RecordedRequest] = []
        self.last_usage: dict[str, int] | None = None
        self._failures: list[tuple[int, str]] = []
        self._timeouts = 0
        self._cuts = 0
        self._breaks: list[tuple[StreamBreak, str]] = []
        self._replays: list[bytes] = []
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        app.router.add_post("/v1/images/generations", self._images)
        app.router.add_post("/v1/audio/speech", self._speech)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host_port = self._runner.addresses[0]
        self._port = int(host_port[1])

    async def stop(self) -> None:
        self._closing.set()  # releases hanging handlers
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeLLMServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def origin(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeLLMServer is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        """Base URL for the OpenAI SDK (includes ``/v1``)."""
        return f"{self.origin}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for the Anthropic SDK (which appends ``/v1/messages`` itself)."""
        return self.origin

    # -- test controls ---------------------------------------------------------------------------

    def fail_next(self, status: int = 500, count: int = 1, message: str | None = None) -> None:
        """Answer the next ``count`` calls with HTTP ``status`` (optionally a custom message)."""
        text = message or f"injected failure with status {status}"
        self._failures.extend([(status, text)] * count)

    def timeout_next(self, count: int = 1) -> None:
        self._timeouts += count

    def cut_next(self, count: int = 1) -> None:
        self._cuts += count

    def break_stream_next(
        self, kind: StreamBreak, count: int = 1, message: str | None = None
    ) -> None:
        """End the next ``count`` streamed Responses calls with a bad event (see above)."""
        self._breaks.extend([(kind, message or f"injected stream {kind}")] * count)

    def replay_next(self, body: bytes) -> None:
        """Answer the next call with exactly ``body`` (a recorded event stream)."""
        self._replays.append(body)

    @property
    def last_request(self) -> RecordedRequest:
        return self.requests[-1]

    @property
    def model_seen(self) -> str | None:
        """The ``model`` of the last request."""
        if not self.requests:
            return None
        model = self.requests[-1].json.get("model")
        return model if isinstance(model, str) else None

    def reply_for(self, body: JSON) -> str:
        return self.reply_fn(body) if self.reply_fn is not None else self.reply_text

    def usage_for(self, body: JSON) -> tuple[int, int]:
        """``(input_tokens, output_tokens)`` the server reports for this request body."""
        reply = self._reply(body)
        return reply.input_tokens, reply.output_tokens

    # -- shared plumbing -------------------------------------------------------------------------

    def _reply(self, body: JSON) -> _Reply:
        full = self.reply_for(body)
        limit = _max_output(body)
        reasoning = self.reasoning_tokens
        text = full
        if limit is not None:
            # Like the real APIs, the cap covers reasoning too: output never exceeds it.
            reasoning = min(reasoning, limit)
            text = _first_words(full, limit - reasoning)
        inputs = input_tokens_for(body) + self.extra_input_tokens
        cached = min(self.cached_tokens, inputs)
        return _Reply(
            text=text,
            truncated=text != full,
            input_tokens=inputs,
            cached_tokens=cached,
            output_tokens=count_words(text) + reasoning,
            reasoning_tokens=reasoning,
            cache_write_tokens=min(self.cache_write_tokens, inputs - cached),
        )

    def _record_usage(self, reply: _Reply) -> None:
        self.last_usage = {
            "input": reply.input_tokens,
            "cached": reply.cached_tokens,
            "cache_write": reply.cache_write_tokens,
            "output": reply.output_tokens,
            "reasoning": reply.reasoning_tokens,
        }

    def _chunks(self, text: str) -> list[str]:
        size = max(1, self.chunk_size)
        return [text[i : i + size] for i in range(0, len(text), size)]

    async def _record_json(self, request: web.Request) -> JSON:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        self.requests.append(RecordedRequest(request.path, body, request.headers))
        return body

    async def _injected_failure(
        self, request: web.Request, anthropic: bool
    ) -> web.StreamResponse | None:
        """Apply a pending ``replay_next``/``timeout_next``/``fail_next``; ``None`` when the call
        proceeds."""
        if self._replays:
            return await self._replay(request, self._replays.pop(0))
        if self._timeouts:
            self._timeouts -= 1
            # Waits past the client's timeout; stop() releases it so shutdown is quick.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.hang_seconds)
            return self._error(503, "the fake server hung on purpose", anthropic)
        if self._failures:
            status, message = self._failures.pop(0)
            return self._error(status, message, anthropic)
        if not _authorized(request):
            return self._error(401, "missing API key", anthropic)
        return None

    def _take_cut(self) -> bool:
        if self._cuts:
            self._cuts -= 1
            return True
        return False

    @staticmethod
    def _error(status: int, message: str, anthropic: bool) -> web.Response:
        if anthropic:
            request_id = _new_id("req_")
            body: JSON = {
                "type": "error",
                "error": {
                    "type": _ANTHROPIC_ERROR_TYPES.get(status, "api_error"),
                    "message": message,
                },
                "request_id": request_id,
            }
            return web.json_response(body, status=status, headers={"request-id": request_id})
        body = {
            "error": {
                "message": message,
                "type": _OPENAI_ERROR_TYPES.get(status, "server_error"),
                "param": None,
                "code": None,
            }
        }
        return web.json_response(body, status=status, headers={"x-request-id": _new_id("req_")})

    async def _stream(
        self, request: web.Request, events: AsyncIterator[bytes], headers: Mapping[str, str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers}
        )
        await response.prepare(request)
        try:
            async for chunk in events:
                await response.write(chunk)
        except _Cut:
            # Drop the TCP connection without the terminating chunk: the client sees a body
            # cut short, exactly like a provider connection reset mid-stream.
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError from None
        await response.write_eof()
        return response

    @staticmethod
    async def _replay(request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        return response

    async def _pause(self, body: JSON) -> None:
        if self.pause_fn is not None:
            await asyncio.sleep(self.pause_fn(body))

    async def _pace(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)

    # -- OpenAI Responses API --------------------------------------------------------------------

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await self._record_json(request)
        await self._pause(body)
        if (failure := await self._injected_failure(request, anthropic=False)) is not None:
            return failure
        if not body.get("model") or "input" not in body:
            return self._error(400, "model and input are required", anthropic=False)
        if any(
            isinstance(t, dict) and t.get("type") == "image_generation"
            for t in body.get("tools") or []
        ):
            return await self._stream(
                request, self._image_tool_events(body), {"x-request-id": _new_id("req_")}
            )
        reply = self._reply(body)
        cut = self._take_cut()
        response_id = _new_id("resp_")
        message_id = _new_id("msg_")
        if not body.get("stream"):
            if cut:
                return await self._cut_plain(request)
            self._record_usage(reply)
            return web.json_response(self._response_object(body, response_id, message_id, reply))
        broken = self._breaks.pop(0) if self._breaks else None
        return await self._stream(
            request,
            self._response_events(body, response_id, message_id, reply, cut, broken),
            {"x-request-id": _new_id("req_")},
        )

    def _response_object(
        self, body: JSON, response_id: str, message_id: str, reply: _Reply | None
    ) -> JSON:
        """A full ``Response`` object; ``reply=None`` gives the in-progress shape."""
        done = reply is not None
        output: list[JSON] = []
        status = "in_progress"
        incomplete = None
        if reply is not None:
            output = [_output_message(message_id, reply.text, "completed")]
            status = "incomplete" if reply.truncated else "completed"
            if reply.truncated:
                incomplete = {"reason": "max_output_tokens"}
        return {
            "id": response_id,
            "object": "response",
            "created_at": int(time.time()),
            "completed_at": int(time.time()) if done else None,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": incomplete,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None,
            "model": body.get("model"),
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": True,
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": [],
            "top_logprobs": 0,
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": self._responses_usage(reply) if reply is not None else None,
            "user": None,
            "metadata": {},
            **(self.response_extra if done else {}),
        }

    async def _response_events(
        self,
        body: JSON,
        response_id: str,
        message_id: str,
        reply: _Reply,
        cut: bool,
        broken: tuple[StreamBreak, str] | None = None,
    ) -> AsyncIterator[bytes]:
        seq = 0

        def event(kind: str, **fields: Any) -> bytes:
            nonlocal seq
            data = {"type": kind, "sequence_number": seq, **fields}
            seq += 1
            return _sse(kind, data, ensure_ascii=not self.raw_unicode)

        in_progress = self._response_object(body, response_id, message_id, None)
        yield event("response.created", response=in_progress)
        yield event("response.in_progress", response=in_progress)
        yield event(
            "response.output_item.added",
            output_index=0,
            item={
                "id": message_id,
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            },
        )
        part_ids = {"item_id": message_id, "output_index": 0, "content_index": 0}
        yield event(
            "response.content_part.added",
            **part_ids,
            part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
        )
        for index, chunk in enumerate(self._chunks(reply.text)):
            if cut and index >= self.cut_after_deltas:
                raise _Cut
            if broken and index >= self.cut_after_deltas:
                break
            await self._pace()
            yield event("response.output_text.delta", **part_ids, delta=chunk, logprobs=[])
        if cut:
            raise _Cut
        if broken:
            kind, message = broken
            if kind == "failed":
                failed = self._response_object(body, response_id, message_id, None)
                failed.update(status="failed", error={"code": "server_error", "message": message})
                yield event("response.failed", response=failed)
            elif kind == "error":
                yield event("error", code="server_error", message=message, param=None)
            elif kind == "error_object":
                yield _sse(None, {"error": {"message": message, "type": "server_error"}})
            elif kind == "garbled":
                yield b'event: response.output_text.delta\ndata: {"type": "response.outp\n\n'
            return
        yield event("response.output_text.done", **part_ids, text=reply.text, logprobs=[])
        yield event(
            "response.content_part.done",
            **part_ids,
            part={"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []},
        )
        yield event(
            "response.output_item.done",
            output_index=0,
            item=_output_message(message_id, reply.text, "completed"),
        )
        final = self._response_object(body, response_id, message_id, reply)
        self._record_usage(reply)
        ending = "response.incomplete" if reply.truncated else "response.completed"
        yield event(ending, response=final)

    # -- OpenAI Chat Completions -----------------------------------------------------------------

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._record_json(request)
        await self._pause(body)
        if (failure := await self._injected_failure(request, anthropic=False)) is not None:
            return failure
        if not body.get("model") or not isinstance(body.get("messages"), list):
            return self._error(400, "model and messages are required", anthropic=False)
        reply = self._reply(body)
        cut = self._take_cut()
        completion_id = _new_id("chatcmpl-")
        finish = "length" if reply.truncated else "stop"
        if not body.get("stream"):
            if cut:
                return await self._cut_plain(request)
            self._record_usage(reply)
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "system_fingerprint": "fp_fake",
                    "service_tier": "default",
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": reply.text,
                                "refusal": None,
                                "annotations": [],
                            },
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                    "usage": self._chat_usage(reply),
                }
            )
        options = body.get("stream_options") or {}
        include_usage = bool(options.get("include_usage"))
        return await self._stream(
            request,
            self._chat_events(body, completion_id, reply, finish, include_usage, cut),
            {"x-request-id": _new_id("req_")},
        )

    async def _chat_events(
        self,
        body: JSON,
        completion_id: str,
        reply: _Reply,
        finish: str,
        include_usage: bool,
        cut: bool,
    ) -> AsyncIterator[bytes]:
        created = int(time.time())

        def chunk(choices: list[JSON], usage: JSON | None = None) -> bytes:
            data: JSON = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": choices,
            }
            if include_usage:
                # With include_usage every chunk carries "usage": null except the last one.
                data["usage"] = usage
            return _sse(None, data, ensure_ascii=not self.raw_unicode)

        def choice(delta: JSON, finish_reason: str | None = None) -> JSON:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

        yield chunk([choice({"role": "assistant", "content": "", "refusal": None})])
        for index, piece in enumerate(self._chunks(reply.text)):
            if cut and index >= self.cut_after_deltas:
                raise _Cut
            await self._pace()
            yield chunk([choice({"content": piece})])
        if cut:
            raise _Cut
        yield chunk([choice({}, finish)])
        if include_usage and self.send_usage:
            self._record_usage(reply)
            yield chunk([], self._chat_usage(reply))
        yield _sse(None, "[DONE]")

    # -- Anthropic Messages API ------------------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._record_json(request)
        await self._pause(body)
        if (failure := await self._injected_failure(request, anthropic=True)) is not None:
            return failure
        problem = _anthropic_problem(request, body)
        if problem:
            return self._error(400, problem, anthropic=True)
        reply = self._reply(body)
        cut = self._take_cut()
        message_id = _new_id("msg_")
        stop_reason = "max_tokens" if reply.truncated else "end_turn"
        if not body.get("stream"):
            if cut:
                return await self._cut_plain(request)
            self._record_usage(reply)
            return web.json_response(
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": reply.text}],
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": self._anthropic_usage(reply, reply.output_tokens),
                },
                headers={"request-id": _new_id("req_")},
            )
        return await self._stream(
            request,
            self._message_events(body, message_id, reply, stop_reason, cut),
            {"request-id": _new_id("req_")},
        )

    async def _message_events(
        self, body: JSON, message_id: str, reply: _Reply, stop_reason: str, cut: bool
    ) -> AsyncIterator[bytes]:
        def event(kind: str, **fields: Any) -> bytes:
            return _sse(kind, {"type": kind, **fields}, ensure_ascii=not self.raw_unicode)

        yield event(
            "message_start",
            message={
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                # The real API reports a provisional output count here; message_delta has the
                # cumulative final one.
                "usage": self._anthropic_usage(reply, 1, start=True),
            },
        )
        yield event("content_block_start", index=0, content_block={"type": "text", "text": ""})
        yield event("ping")
        for index, piece in enumerate(self._chunks(reply.text)):
            if cut and index >= self.cut_after_deltas:
                raise _Cut
            await self._pace()
            yield event("content_block_delta", index=0, delta={"type": "text_delta", "text": piece})
        if cut:
            raise _Cut
        yield event("content_block_stop", index=0)
        self._record_usage(reply)
        usage = {"usage": self._anthropic_usage(reply, reply.output_tokens)}
        yield event(
            "message_delta",
            delta={"stop_reason": stop_reason, "stop_sequence": None},
            **(usage if self.send_usage else {}),
        )
        yield event("message_stop")

    # -- OpenAI audio transcriptions -------------------------------------------------------------

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        fields: JSON = {}
        files: dict[str, bytes] = {}
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = value.file.read()
                fields[key] = value.filename
            else:
                fields[key] = value
        self.requests.append(RecordedRequest(request.path, fields, request.headers, files))
        if (failure := await self._injected_failure(request, anthropic=False)) is not None:
            return failure
        if "file" not in files or not fields.get("model"):
            return self._error(400, "file and model are required", anthropic=False)
        model = str(fields["model"])
        result: JSON = {"text": self.transcript_text}
        if model.startswith("whisper"):
            result["usage"] = {"type": "duration", "seconds": 1.0}
            self.last_usage = {"input": 0, "cached": 0, "output": 0, "reasoning": 0}
        else:
            inputs = max(1, len(files["file"]) // 1000)
            outputs = count_words(self.transcript_text)
            result["usage"] = {
                "type": "tokens",
                "input_tokens": inputs,
                "output_tokens": outputs,
                "total_tokens": inputs + outputs,
                "input_token_details": {"audio_tokens": inputs, "text_tokens": 0},
            }
            self.last_usage = {"input": inputs, "cached": 0, "output": outputs, "reasoning": 0}
        return web.json_response(result, headers={"x-request-id": _new_id("req_")})

    # -- OpenAI images and speech ----------------------------------------------------------------

    async def _images(self, request: web.Request) -> web.StreamResponse:
        body = await self._record_json(request)
        if (failure := await self._injected_failure(request, anthropic=False)) is not None:
            return failure
        model, prompt = body.get("model"), body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return self._error(400, "prompt is required", anthropic=False)
        model = str(model or "dall-e-2")
        if model.startswith("gpt-image") and "response_format" in body:
            return self._error(400, "Unknown parameter: 'response_format'.", anthropic=False)
        item: JSON = {"b64_json": base64.b64encode(self.image_png).decode("ascii")}
        result: JSON = {"created": int(time.time()), "data": [item]}
        if model.startswith("dall-e"):
            item["revised_prompt"] = f"A picture of {prompt}"
            self.last_usage = None
        elif self.send_usage:
            words = count_words(prompt)
            result.update(size=body.get("size", "1024x1024"), quality=body.get("quality", "medium"))
            result["usage"] = {
                "input_tokens": words,
                "input_tokens_details": {"text_tokens": words, "image_tokens": 0},
                "output_tokens": self.image_tokens,
                "total_tokens": words + self.image_tokens,
            }
            self.last_usage = {"input": words, "cached": 0, "output": self.image_tokens}
        return web.json_response(result, headers={"x-request-id": _new_id("req_")})

    async def _image_tool_events(self, body: JSON) -> AsyncIterator[bytes]:
        seq = 0

        def event(kind: str, **fields: Any) -> bytes:
            nonlocal seq
            data = {"type": kind, "sequence_number": seq, **fields}
            seq += 1
            return _sse(kind, data)

        response_id, item_id = _new_id("resp_"), _new_id("ig_")
        in_progress = self._response_object(body, response_id, item_id, None)
        yield event("response.created", response=in_progress)
        yield event("response.in_progress", response=in_progress)
        call: JSON = {"id": item_id, "type": "image_generation_call", "status": "in_progress"}
        yield event("response.output_item.added", output_index=0, item=call)
        for kind in ("in_progress", "generating"):
            await self._pace()
            yield event(f"response.image_generation_call.{kind}", output_index=0, item_id=item_id)
        yield event("response.image_generation_call.completed", output_index=0, item_id=item_id)
        prompt = str(body.get("input"))
        done = {
            **call,
            "status": "completed",
            "result": base64.b64encode(self.image_png).decode("ascii"),
            "revised_prompt": f"A picture of {prompt}",
            "output_format": "png",
            "quality": "medium",
            "size": "1024x1024",
        }
        yield event("response.output_item.done", output_index=0, item=done)
        inputs = input_tokens_for(body)
        final = self._response_object(body, response_id, item_id, None)
        words = count_words(prompt)
        final.update(
            status="completed",
            output=[done],
            usage={"input_tokens": inputs, "output_tokens": 20, "total_tokens": inputs + 20},
            tool_usage={
                "image_gen": {
                    "input_tokens": words,
                    "input_tokens_details": {"text_tokens": words, "image_tokens": 0},
                    "output_tokens": self.image_tokens,
                    "output_tokens_details": {"image_tokens": self.image_tokens, "text_tokens": 0},
                    "total_tokens": words + self.image_tokens,
                }
            },
        )
        self.last_usage = {
            "input": inputs + words,
            "cached": 0,
            "output": 20 + self.image_tokens,
        }
        yield event("response.completed", response=final)

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body = await self._record_json(request)
        if (failure := await self._injected_failure(request, anthropic=False)) is not None:
            return failure
        if not body.get("model") or not body.get("input") or not body.get("voice"):
            return self._error(400, "model, input and voice are required", anthropic=False)
        wanted = self.speech_format or str(body.get("response_format") or "mp3")
        if wanted == "opus":
            return web.Response(body=self.speech_audio, content_type="audio/ogg")
        return web.Response(body=MP3_AUDIO, content_type="audio/mpeg")

    # -- usage on the wire -----------------------------------------------------------------------

    def _details(self, **counts: int) -> JSON:
        """The non-zero details, or all of them with ``usage_details``."""
        return {k: v for k, v in counts.items() if v or self.usage_details}

    def _responses_usage(self, reply: _Reply) -> JSON | None:
        if not self.send_usage:
            return None
        if self.usage_override is not None:
            return self.usage_override
        usage: JSON = {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens}
        inputs = self._details(
            cached_tokens=reply.cached_tokens, cache_write_tokens=reply.cache_write_tokens
        )
        if self.usage_shape == "2026":
            inputs = {"cached_tokens": 0, "cache_write_tokens": 0, **inputs}
        elif "cache_write_tokens" in inputs and not reply.cache_write_tokens:
            del inputs["cache_write_tokens"]  # before 2026 there was no such field
        if inputs:
            usage["input_tokens_details"] = inputs
        outputs = self._details(reasoning_tokens=reply.reasoning_tokens)
        if outputs:
            usage["output_tokens_details"] = outputs
        usage["total_tokens"] = reply.input_tokens + reply.output_tokens
        return usage

    def _chat_usage(self, reply: _Reply) -> JSON:
        if self.usage_override is not None:
            return self.usage_override
        usage: JSON = {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        }
        prompt = self._details(
            cached_tokens=reply.cached_tokens,
            cache_write_tokens=reply.cache_write_tokens,
            audio_tokens=0,
        )
        if prompt:
            usage["prompt_tokens_details"] = prompt
        completion = self._details(
            reasoning_tokens=reply.reasoning_tokens,
            audio_tokens=0,
            accepted_prediction_tokens=0,
            rejected_prediction_tokens=0,
        )
        if completion:
            usage["completion_tokens_details"] = completion
        return usage

    def _anthropic_usage(self, reply: _Reply, output_tokens: int, start: bool = False) -> JSON:
        if self.usage_override is not None and not start:
            return self.usage_override
        usage: JSON = {
            "input_tokens": reply.input_tokens - reply.cached_tokens - reply.cache_write_tokens,
            **self._details(
                cache_creation_input_tokens=reply.cache_write_tokens,
                cache_read_input_tokens=reply.cached_tokens,
            ),
            "output_tokens": output_tokens,
        }
        if reply.reasoning_tokens or self.usage_details:
            usage["output_tokens_details"] = {"thinking_tokens": reply.reasoning_tokens}
        if self.usage_details:
            usage["service_tier"] = "standard"
        return usage

    # -- cut non-streaming answers ---------------------------------------------------------------

    @staticmethod
    async def _cut_plain(request: web.Request) -> web.StreamResponse:
        """Promise a JSON body, send half of it and drop the connection."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b'{"id": "cut", "obj')
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError


def _authorized(request: web.Request) -> bool:
    auth = request.headers.get("Authorization", "")
    return bool(request.headers.get("x-api-key")) or (auth.startswith("Bearer ") and len(auth) > 7)


def _anthropic_problem(request: web.Request, body: JSON) -> str | None:
    """What the real Messages API would reject with HTTP 400, or ``None``."""
    for key in ("model", "messages", "max_tokens"):
        if key not in body:
            return f"{key}: Field required"
    if request.headers.get("anthropic-version") == ANTHROPIC_API_VERSION:
        # API version 2026-10-21 removed sampling parameters (any value is a 400).
        for key in ("temperature", "top_p", "top_k"):
            if key in body:
                return f"{key}: Extra inputs are not permitted"
    for key in ("frequency_penalty", "presence_penalty"):
        if key in body:
            return f"{key}: Extra inputs are not permitted"
    return None


def _output_message(message_id: str, text: str, status: str) -> JSON:
    return {
        "id": message_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


__all__ = [
    "IMAGE_TOKENS",
    "TOKENS_PER_MESSAGE",
    "FakeLLMServer",
    "RecordedRequest",
    "count_words",
    "input_tokens_for",
]
