"""OpenAI Responses API client (provider ``openai``) and the base shared with Chat Completions.

The base owns the SDK client, error translation and audio transcription; the subclasses only map a
:class:`CompletionRequest` to their API and its stream events back to :class:`StreamEvent`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Sequence

import anyio
import httpx2
import openai
from openai import omit
from openai.types.audio.transcription import UsageTokens
from openai.types.responses import (
    EasyInputMessageParam,
    Response,
    ResponseCompletedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
    ResponseInputImageParam,
    ResponseInputMessageContentListParam,
    ResponseInputParam,
    ResponseInputTextParam,
    ResponseTextDeltaEvent,
)

from assistants.types import (
    ChatMessage,
    Completion,
    CompletionRequest,
    ImageInput,
    ProviderName,
    StreamEvent,
    TextDelta,
    Transcription,
    Usage,
)
from bot.errors import ProviderError

#: Sent when no key is configured: local OpenAI-compatible servers do not check it, and passing
#: something stops the SDK from falling back to ``OPENAI_API_KEY`` behind our settings' back.
PLACEHOLDER_API_KEY = "unused"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_MAX_DETAIL = 500

#: Errors below the SDK that can escape it (a body cut mid-stream, TLS, malformed SSE data).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx2.HTTPError,
    OSError,
    anyio.EndOfStream,
    json.JSONDecodeError,
)
#: Everything a call through the OpenAI SDK can raise that means "the provider call failed".
CALL_ERRORS: tuple[type[BaseException], ...] = (openai.OpenAIError, *TRANSPORT_ERRORS)


def data_url(image: ImageInput) -> str:
    return f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def safe_detail(text: str, secret: str | None) -> str:
    """``text`` without the API key, bounded in length (details end up in logs and the DB)."""
    if secret and secret != PLACEHOLDER_API_KEY:
        text = text.replace(secret, "***")
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f" ({type(cause).__name__}: {cause})" if cause is not None else ""


class OpenAIClientBase:
    """Shared by the Responses and Chat Completions clients: one ``openai.AsyncOpenAI`` each."""

    name: ProviderName

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int = 0,
    ) -> None:
        self._api_key = api_key or PLACEHOLDER_API_KEY
        self._timeout = timeout
        self._client = openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=base_url or DEFAULT_OPENAI_BASE_URL,
            timeout=timeout,
            max_retries=max_retries,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def transcribe(
        self, audio: bytes, filename: str, model: str = "whisper-1"
    ) -> Transcription:
        """Speech to text; usage is the server's token count when it reports one, else zero."""
        try:
            result = await self._client.audio.transcriptions.create(
                file=(filename, audio), model=model
            )
        except CALL_ERRORS as exc:
            raise self._error(exc) from exc
        usage = Usage()
        # Token-billed models report tokens; whisper-1 reports seconds, which carry no tokens.
        if isinstance(result.usage, UsageTokens):
            usage = Usage(
                input_tokens=result.usage.input_tokens, output_tokens=result.usage.output_tokens
            )
        return Transcription(text=result.text, model=model, usage=usage)

    def _headers(self, request: CompletionRequest) -> dict[str, str]:
        return {IDEMPOTENCY_HEADER: request.idempotency_key}

    def _fail(self, detail: str, status: int | None = None) -> ProviderError:
        return ProviderError(self.name, safe_detail(detail, self._api_key), status=status)

    def _error(self, exc: BaseException) -> ProviderError:
        """Translate any SDK or transport failure into a :class:`ProviderError`."""
        if isinstance(exc, openai.APIStatusError):
            return self._fail(f"HTTP {exc.status_code}: {exc.message}", exc.status_code)
        if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
            return self._fail(f"request timed out after {self._timeout:g}s")
        if isinstance(exc, openai.APIConnectionError):
            return self._fail(f"connection error{_cause(exc)}")
        return self._fail(f"{type(exc).__name__}: {exc}")


class OpenAIResponsesClient(OpenAIClientBase):
    """OpenAI Responses API (``POST /responses``), streamed.

    The system prompt goes to ``instructions``; images become ``input_image`` parts with data
    URLs. The Responses API has no frequency/presence penalties, so those are not sent.
    """

    name: ProviderName = "openai"

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        params = request.params
        parts: list[str] = []
        final: Response | None = None
        try:
            events = await self._client.responses.create(
                model=params.model,
                input=_input(request.messages),
                instructions=request.system_prompt or omit,
                max_output_tokens=params.max_output_tokens,
                temperature=params.temperature if params.temperature is not None else omit,
                top_p=params.top_p if params.top_p is not None else omit,
                # Conversations live in our DB; nothing chains on previous_response_id, so there
                # is no reason to leave tenants' content stored at the provider.
                store=False,
                stream=True,
                extra_headers=self._headers(request),
            )
            async with events:
                async for event in events:
                    if isinstance(event, ResponseTextDeltaEvent):
                        parts.append(event.delta)
                        yield TextDelta(event.delta)
                    elif isinstance(event, ResponseCompletedEvent | ResponseIncompleteEvent):
                        final = event.response
                    elif isinstance(event, ResponseFailedEvent):
                        error = event.response.error
                        raise self._fail(error.message if error else "response failed")
                    elif isinstance(event, ResponseErrorEvent):
                        raise self._fail(f"stream error {event.code}: {event.message}")
        except CALL_ERRORS as exc:
            raise self._error(exc) from exc
        if final is None:
            raise self._fail("stream ended before response.completed")
        yield self._completion(final, "".join(parts))

    def _completion(self, response: Response, text: str) -> Completion:
        usage = response.usage
        if usage is None:
            raise self._fail("response.completed carried no usage")
        finish = "stop"
        if response.incomplete_details is not None:
            reason = response.incomplete_details.reason
            finish = "length" if reason == "max_output_tokens" else (reason or "incomplete")
        return Completion(
            text=text or response.output_text,
            usage=Usage(
                input_tokens=usage.input_tokens,
                cached_input_tokens=usage.input_tokens_details.cached_tokens,
                output_tokens=usage.output_tokens,
                reasoning_tokens=usage.output_tokens_details.reasoning_tokens,
            ),
            model=str(response.model),
            response_id=response.id,
            finish_reason=finish,
        )


def _input(messages: Sequence[ChatMessage]) -> ResponseInputParam:
    return [_input_message(message) for message in messages]


def _input_message(message: ChatMessage) -> EasyInputMessageParam:
    # Only user turns may carry images; assistant history is plain text.
    if message.role != "user" or not message.images:
        return {"role": message.role, "content": message.content}
    content: ResponseInputMessageContentListParam = []
    if message.content:
        text: ResponseInputTextParam = {"type": "input_text", "text": message.content}
        content.append(text)
    for image in message.images:
        part: ResponseInputImageParam = {
            "type": "input_image",
            "image_url": data_url(image),
            "detail": "auto",
        }
        content.append(part)
    return {"role": "user", "content": content}
