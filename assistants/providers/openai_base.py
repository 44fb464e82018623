"""The OpenAI SDK client shared by the Responses and Chat Completions clients.

It owns the ``openai.AsyncOpenAI`` instance, error translation and audio transcription; the
subclasses only map a :class:`CompletionRequest` to their API and its stream events back to
:class:`StreamEvent`.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import openai
from openai import AsyncAPIResponse
from openai.types.audio.transcription import UsageTokens

from assistants.providers.common import (
    IDEMPOTENCY_HEADER,
    TRANSPORT_ERRORS,
    SDKClient,
    describe_cause,
    safe_detail,
)
from assistants.providers.sse import json_objects
from assistants.types import CompletionRequest, ImageInput, ProviderName, Transcription, Usage
from core.errors import ProviderError

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
#: Everything a call through the OpenAI SDK can raise that means "the provider call failed".
CALL_ERRORS: tuple[type[BaseException], ...] = (openai.OpenAIError, *TRANSPORT_ERRORS)
#: What reading a raw body can raise below the SDK.
_READ_ERRORS = (httpx2.RequestError, ssl.SSLError, anyio.EndOfStream)


def data_url(image: ImageInput) -> str:
    return f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def stream_api_error(error: Any, request: httpx2.Request) -> openai.APIError:
    """What the SDK's stream raises for an event carrying ``{"error": ...}``."""
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return openai.APIError(message, request, body=error)


class OpenAIClientBase(SDKClient[openai.AsyncOpenAI]):
    """Shared by the Responses and Chat Completions clients: one ``openai.AsyncOpenAI`` each."""

    name: ProviderName
    default_base_url = DEFAULT_OPENAI_BASE_URL

    def _connect(self, base_url: str, max_retries: int) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=base_url,
            timeout=self._timeout,
            max_retries=max_retries,
            # The SDK's aiohttp transport: with dozens of streams open, httpx2's pool checks
            # every idle connection on each request and release (~15 % of a turn's CPU).
            http_client=openai.DefaultAioHttpClient(timeout=self._timeout),
        )

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
            return self._fail(f"connection error{describe_cause(exc.__cause__ or exc.__context__)}")
        return self._fail(f"{type(exc).__name__}: {exc}")

    async def _read(self, raw: AsyncAPIResponse[Any]) -> AsyncIterator[dict[str, Any]]:
        """The JSON objects of a raw (``with_streaming_response``) event stream.

        What reading the body can raise below the SDK becomes ``APITimeoutError`` /
        ``APIConnectionError``, as in the SDK's own stream, so that it reads the same.
        """
        try:
            async for data in json_objects(raw.iter_bytes()):
                yield data
        except httpx2.TimeoutException as exc:
            raise openai.APITimeoutError(request=raw.http_response.request) from exc
        except _READ_ERRORS as exc:
            raise openai.APIConnectionError(request=raw.http_response.request) from exc
