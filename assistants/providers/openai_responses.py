"""OpenAI Responses API client (provider ``openai``)."""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import httpx2
import openai
import pydantic
from openai import omit
from openai.types.responses import (
    EasyInputMessageParam,
    Response,
    ResponseInputImageParam,
    ResponseInputMessageContentListParam,
    ResponseInputParam,
    ResponseInputTextParam,
    ResponseUsage,
)

from assistants.providers.openai_base import CALL_ERRORS, OpenAIClientBase, data_url
from assistants.providers.sse import SSEDecoder
from assistants.types import (
    ChatMessage,
    Completion,
    CompletionRequest,
    ProviderName,
    StreamEvent,
    TextDelta,
    Usage,
)

log = logging.getLogger(__name__)

_DELTA = "response.output_text.delta"
_FINAL = frozenset({"response.completed", "response.incomplete"})
#: What reading the body can raise below the SDK; the SDK's own stream wraps these in
#: ``APITimeoutError``/``APIConnectionError``, and so do we, so that they read the same.
_READ_ERRORS = (httpx2.RequestError, ssl.SSLError, anyio.EndOfStream)


class OpenAIResponsesClient(OpenAIClientBase):
    """OpenAI Responses API (``POST /responses``), streamed.

    The system prompt goes to ``instructions``; images become ``input_image`` parts with data
    URLs. The Responses API has no frequency/presence penalties, so those are not sent.

    The event stream is read raw (``with_streaming_response``) and decoded here: the SDK's typed
    stream builds a pydantic model of every event, which costs far more CPU than the text delta
    it carries. Deltas are taken straight from the decoded JSON; only the final ``Response`` is
    built as an SDK model.
    """

    name: ProviderName = "openai"

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        params = request.params
        parts: list[str] = []
        final: Response | None = None
        try:
            async with self._client.responses.with_streaming_response.create(
                model=params.model,
                max_output_tokens=params.max_output_tokens,
                temperature=params.temperature if params.temperature is not None else omit,
                top_p=params.top_p if params.top_p is not None else omit,
                # Conversations live in our DB; nothing chains on previous_response_id, so there
                # is no reason to leave tenants' content stored at the provider.
                store=False,
                stream=True,
                extra_headers=self._headers(request),
                # The conversation goes into the body as it is: the SDK would walk every message
                # of the history through its TypedDict transform (3.5 ms of CPU for eleven short
                # messages, more than the rest of the turn's request), and ours are plain JSON.
                extra_body=_body(request),
            ) as raw:
                # Non-2xx answers raised APIStatusError on entering; this is a 2xx event stream.
                decoder = SSEDecoder()
                done = False
                try:
                    async for chunk in raw.iter_bytes():
                        for sse in decoder.feed(chunk):
                            if sse.data.startswith("[DONE]"):
                                # Not part of the Responses protocol; it ends a stream in the SDK.
                                done = True
                                break
                            data = json.loads(sse.data)
                            if not isinstance(data, dict):
                                continue
                            kind = data.get("type")
                            if kind == _DELTA:
                                delta = data.get("delta")
                                if not isinstance(delta, str):
                                    raise self._fail(f"malformed {_DELTA} event")
                                parts.append(delta)
                                yield TextDelta(delta)
                            elif data.get("error"):
                                # The SDK's stream raises on any event carrying an error object.
                                raise _stream_api_error(data["error"], raw.http_response.request)
                            elif kind in _FINAL:
                                final = self._final_response(kind, data.get("response"))
                            elif kind == "response.failed":
                                raise self._fail(_failure_message(data.get("response")))
                            elif kind == "error":
                                code, message = data.get("code"), data.get("message")
                                raise self._fail(f"stream error {code}: {message}")
                        if done:
                            break
                except httpx2.TimeoutException as exc:
                    raise openai.APITimeoutError(request=raw.http_response.request) from exc
                except _READ_ERRORS as exc:
                    raise openai.APIConnectionError(request=raw.http_response.request) from exc
        except CALL_ERRORS as exc:
            raise self._error(exc) from exc
        if final is None:
            raise self._fail("stream ended before response.completed")
        try:
            completion = self._completion(final, "".join(parts))
        except (AttributeError, TypeError) as exc:  # only a leniently built response gets here
            raise self._fail(f"malformed final response: {exc}") from exc
        yield completion

    def warm_up(self) -> None:
        # The SDK imports its Responses resource on first use, and pydantic builds the
        # ``Response`` validator on first validation: together most of a second of CPU that
        # would otherwise fall on the first user's turn.
        _ = self._client.responses
        Response.model_rebuild()

    def _final_response(self, kind: str, payload: Any) -> Response:
        """The ``Response`` of a ``response.completed``/``response.incomplete`` event."""
        if not isinstance(payload, dict):
            raise self._fail(f"{kind} carried no response object")
        try:
            return Response.model_validate(payload)
        except pydantic.ValidationError as exc:
            return self._lenient_response(kind, payload, exc)

    def _lenient_response(
        self, kind: str, payload: dict[str, Any], error: pydantic.ValidationError
    ) -> Response:
        """A response from an API newer than this SDK, built the way the SDK's own stream does.

        A service tier, status, output item or tool type this SDK does not know yet fails strict
        validation; the SDK's typed stream constructed such a response without validating it, so
        an answer that was generated (and billed) is not thrown away for it. The usage we meter
        from must still be well-formed.
        """
        usage = payload.get("usage")
        try:
            checked = None if usage is None else ResponseUsage.model_validate(usage)
        except pydantic.ValidationError as exc:
            raise self._fail(f"{kind} carried malformed usage: {_first_error(exc)}") from exc
        log.warning("%s did not validate, built leniently: %s", kind, _first_error(error))
        response = Response.model_construct(**payload)
        response.usage = checked
        return response

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


def _failure_message(response: Any) -> str:
    """Like the SDK model's ``response.error.message if response.error else "response failed"``."""
    error = response.get("error") if isinstance(response, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else "response failed"


def _stream_api_error(error: Any, request: httpx2.Request) -> openai.APIError:
    """What the SDK's stream raises for an event carrying ``{"error": ...}``."""
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return openai.APIError(message, request, body=error)


def _first_error(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']} ({exc.error_count()} errors)"


def _body(request: CompletionRequest) -> dict[str, object]:
    body: dict[str, object] = {"input": _input(request.messages)}
    if request.system_prompt:
        body["instructions"] = request.system_prompt
    return body


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
