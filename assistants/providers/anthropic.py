"""Anthropic Messages API client (provider ``anthropic``), streamed."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal, cast, get_args

import anthropic
import httpx2
from anthropic import omit
from anthropic.types import (
    Base64ImageSourceParam,
    ContentBlockParam,
    ImageBlockParam,
    MessageParam,
    TextBlockParam,
)

from assistants.estimate import usage_or_estimate
from assistants.providers.common import (
    IDEMPOTENCY_HEADER,
    TRANSPORT_ERRORS,
    SDKClient,
    describe_cause,
    safe_detail,
)
from assistants.providers.sse import json_objects
from assistants.providers.usage_report import anthropic_usage, dump_report
from assistants.types import (
    ChatMessage,
    Completion,
    CompletionRequest,
    ImageInput,
    ProviderName,
    StreamEvent,
    TextDelta,
)
from core.errors import ProviderError

log = logging.getLogger(__name__)

DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"

ImageMediaType = Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
_IMAGE_TYPES: frozenset[str] = frozenset(get_args(ImageMediaType))

_CALL_ERRORS: tuple[type[BaseException], ...] = (anthropic.AnthropicError, *TRANSPORT_ERRORS)
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}


class AnthropicClient(SDKClient[anthropic.AsyncAnthropic]):
    """Anthropic Messages API (``POST /v1/messages``), streamed.

    The event stream is read raw and decoded as JSON (as the OpenAI clients do), so that
    Anthropic-compatible servers and newer API versions with events, blocks or usage fields this
    SDK does not know still deliver their answer; usage is normalised by
    :func:`anthropic_usage`.

    Sampling parameters are not sent: the SDK (2.x) pins API version 2026-10-21, which rejects
    ``temperature``/``top_p``/``top_k`` with HTTP 400 at any value, and the API never had
    frequency/presence penalties. ``base_url`` is the API origin; a trailing ``/v1`` (a common
    copy-paste from OpenAI-style settings) is dropped because the SDK appends ``/v1/messages``.
    """

    name: ProviderName = "anthropic"
    default_base_url = DEFAULT_ANTHROPIC_BASE_URL

    def _connect(self, base_url: str, max_retries: int) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=self._api_key,
            base_url=_origin(base_url),
            timeout=self._timeout,
            max_retries=max_retries,
            # The SDK's aiohttp transport: with dozens of streams open, httpx2's pool checks
            # every idle connection on each request and release (~15 % of a turn's CPU).
            http_client=anthropic.DefaultAioHttpClient(timeout=self._timeout),
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        params = request.params
        messages = self._messages(request.messages)
        parts: list[str] = []
        start: Any = None
        revisions: list[Any] = []
        stop_reason: str | None = None
        stopped = False
        model = params.model
        message_id: str | None = None
        try:
            async with self._client.messages.with_streaming_response.create(
                model=params.model,
                max_tokens=params.max_output_tokens,
                system=request.system_prompt or omit,
                messages=messages,
                stream=True,
                extra_headers={IDEMPOTENCY_HEADER: request.idempotency_key},
            ) as raw:
                async for event in json_objects(raw.iter_bytes()):
                    kind = event.get("type")
                    if kind == "content_block_delta":
                        text = _text_delta(event.get("delta"))
                        if text:
                            parts.append(text)
                            yield TextDelta(text)
                    elif kind == "message_start":
                        message = event.get("message")
                        message = message if isinstance(message, dict) else {}
                        start = message.get("usage")
                        model = _string(message.get("model")) or model
                        message_id = _string(message.get("id")) or None
                    elif kind == "message_delta":
                        revisions.append(event.get("usage"))
                        delta = event.get("delta")
                        if isinstance(delta, dict):
                            stop_reason = _string(delta.get("stop_reason")) or stop_reason
                    elif kind == "message_stop":
                        stopped = True
                    elif kind == "error":
                        error = event.get("error")
                        error = error if isinstance(error, dict) else {}
                        raise self._fail(
                            f"stream error {error.get('type')}: {error.get('message')}"
                        )
        except _CALL_ERRORS as exc:
            raise self._error(exc) from exc
        if not stopped:
            raise self._fail("stream ended before message_stop")
        text = "".join(parts)
        usage = anthropic_usage(start, revisions)
        if usage is None:
            log.warning(
                "%s: message carried no usable usage; charging an estimate",
                request.idempotency_key,
            )
        report = dump_report({"message_start": start, "message_delta": revisions})
        yield Completion(
            text=text,
            usage=usage_or_estimate(usage, request, text, report),
            model=model,
            response_id=message_id,
            finish_reason=_FINISH_REASONS.get(stop_reason or "", stop_reason),
        )

    def _messages(self, messages: Sequence[ChatMessage]) -> list[MessageParam]:
        result: list[MessageParam] = []
        for message in messages:
            if message.role == "assistant":
                result.append({"role": "assistant", "content": message.content})
            elif not message.images:
                result.append({"role": "user", "content": message.content})
            else:
                result.append({"role": "user", "content": self._user_blocks(message)})
        return result

    def _user_blocks(self, message: ChatMessage) -> list[ContentBlockParam]:
        # Images first: Anthropic recommends placing images before the text that refers to them.
        blocks: list[ContentBlockParam] = [self._image_block(image) for image in message.images]
        if message.content:  # the API rejects empty text blocks
            text: TextBlockParam = {"type": "text", "text": message.content}
            blocks.append(text)
        return blocks

    def _image_block(self, image: ImageInput) -> ImageBlockParam:
        if image.mime_type not in _IMAGE_TYPES:
            raise self._fail(f"unsupported image type {image.mime_type}")
        source: Base64ImageSourceParam = {
            "type": "base64",
            "media_type": cast(ImageMediaType, image.mime_type),
            "data": base64.b64encode(image.data).decode("ascii"),
        }
        return {"type": "image", "source": source}

    def _fail(self, detail: str, status: int | None = None) -> ProviderError:
        return ProviderError(self.name, safe_detail(detail, self._api_key), status=status)

    def _error(self, exc: BaseException) -> ProviderError:
        """Translate any SDK or transport failure into a :class:`ProviderError`."""
        if isinstance(exc, anthropic.APIStatusError):
            return self._fail(f"HTTP {exc.status_code}: {exc.message}", exc.status_code)
        if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
            return self._fail(f"request timed out after {self._timeout:g}s")
        if isinstance(exc, anthropic.APIConnectionError | httpx2.HTTPError):
            cause = exc.__cause__ if isinstance(exc, anthropic.APIConnectionError) else exc
            return self._fail(f"connection error{describe_cause(cause)}")
        return self._fail(f"{type(exc).__name__}: {exc}")


def _text_delta(delta: object) -> str:
    """The text of a ``text_delta`` (thinking, signatures and tool input are not answer text)."""
    if isinstance(delta, dict) and delta.get("type") == "text_delta":
        return _string(delta.get("text"))
    return ""


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _origin(base_url: str) -> str:
    return base_url.rstrip("/").removesuffix("/v1")
