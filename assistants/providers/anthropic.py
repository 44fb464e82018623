"""Anthropic Messages API client (provider ``anthropic``), streamed."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from typing import Literal, cast, get_args

import anthropic
import httpx2
from anthropic import omit
from anthropic.types import (
    Base64ImageSourceParam,
    ContentBlockParam,
    ImageBlockParam,
    MessageDeltaUsage,
    MessageParam,
    RawContentBlockDeltaEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextBlockParam,
)
from anthropic.types import TextDelta as AnthropicTextDelta
from anthropic.types import Usage as AnthropicUsage

from assistants.providers.common import (
    IDEMPOTENCY_HEADER,
    TRANSPORT_ERRORS,
    SDKClient,
    describe_cause,
    safe_detail,
)
from assistants.types import (
    ChatMessage,
    Completion,
    CompletionRequest,
    ImageInput,
    ProviderName,
    StreamEvent,
    TextDelta,
    Usage,
)
from core.errors import ProviderError

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
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        params = request.params
        messages = self._messages(request.messages)
        parts: list[str] = []
        start: AnthropicUsage | None = None
        final: MessageDeltaUsage | None = None
        stop_reason: str | None = None
        stopped = False
        model = params.model
        message_id: str | None = None
        try:
            events = await self._client.messages.create(
                model=params.model,
                max_tokens=params.max_output_tokens,
                system=request.system_prompt or omit,
                messages=messages,
                stream=True,
                extra_headers={IDEMPOTENCY_HEADER: request.idempotency_key},
            )
            async with events:
                async for event in events:
                    if isinstance(event, RawMessageStartEvent):
                        start = event.message.usage
                        model, message_id = str(event.message.model), event.message.id
                    elif isinstance(event, RawContentBlockDeltaEvent):
                        if isinstance(event.delta, AnthropicTextDelta) and event.delta.text:
                            parts.append(event.delta.text)
                            yield TextDelta(event.delta.text)
                    elif isinstance(event, RawMessageDeltaEvent):
                        final = event.usage
                        stop_reason = event.delta.stop_reason
                    elif isinstance(event, RawMessageStopEvent):
                        stopped = True
        except _CALL_ERRORS as exc:
            raise self._error(exc) from exc
        if start is None or final is None or not stopped:
            raise self._fail("stream ended before message_stop")
        yield Completion(
            text="".join(parts),
            usage=_usage(start, final),
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


def _usage(start: AnthropicUsage, final: MessageDeltaUsage) -> Usage:
    """Merge ``message_start`` and the cumulative ``message_delta`` usage.

    Anthropic's ``input_tokens`` excludes cache reads and writes; ours includes both.
    """

    def pick(late: int | None, early: int | None) -> int:
        return late if late is not None else (early or 0)

    uncached = pick(final.input_tokens, start.input_tokens)
    cache_read = pick(final.cache_read_input_tokens, start.cache_read_input_tokens)
    cache_write = pick(final.cache_creation_input_tokens, start.cache_creation_input_tokens)
    details = final.output_tokens_details or start.output_tokens_details
    return Usage(
        input_tokens=uncached + cache_read + cache_write,
        cached_input_tokens=cache_read,
        output_tokens=final.output_tokens,
        reasoning_tokens=details.thinking_tokens if details is not None else 0,
    )


def _origin(base_url: str) -> str:
    return base_url.rstrip("/").removesuffix("/v1")
