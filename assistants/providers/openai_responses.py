"""OpenAI Responses API client (provider ``openai``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from openai import omit
from openai.types.responses import (
    EasyInputMessageParam,
    ResponseInputImageParam,
    ResponseInputMessageContentListParam,
    ResponseInputParam,
    ResponseInputTextParam,
)

from assistants.estimate import usage_or_estimate
from assistants.providers.openai_base import (
    CALL_ERRORS,
    OpenAIClientBase,
    data_url,
    stream_api_error,
)
from assistants.providers.usage_report import dump_report, responses_usage
from assistants.types import (
    ChatMessage,
    Completion,
    CompletionRequest,
    ProviderName,
    StreamEvent,
    TextDelta,
)

log = logging.getLogger(__name__)

_DELTA = "response.output_text.delta"
_FINAL = frozenset({"response.completed", "response.incomplete"})


class OpenAIResponsesClient(OpenAIClientBase):
    """OpenAI Responses API (``POST /responses``), streamed.

    The system prompt goes to ``instructions``; images become ``input_image`` parts with data
    URLs. The Responses API has no frequency/presence penalties, so those are not sent.

    The event stream is read raw (``with_streaming_response``) and decoded here: the SDK's typed
    stream builds a pydantic model of every event, which costs far more CPU than the text delta
    it carries. Deltas and the final ``Response`` are taken straight from the decoded JSON.
    """

    name: ProviderName = "openai"

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        params = request.params
        parts: list[str] = []
        final: dict[str, Any] | None = None
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
                async for data in self._read(raw):
                    kind = data.get("type")
                    if kind == _DELTA:
                        delta = data.get("delta")
                        if not isinstance(delta, str):
                            raise self._fail(f"malformed {_DELTA} event")
                        parts.append(delta)
                        yield TextDelta(delta)
                    elif data.get("error"):
                        # The SDK's stream raises on any event carrying an error object.
                        raise stream_api_error(data["error"], raw.http_response.request)
                    elif kind in _FINAL:
                        final = self._final_response(kind, data.get("response"))
                    elif kind == "response.failed":
                        raise self._fail(_failure_message(data.get("response")))
                    elif kind == "error":
                        code, message = data.get("code"), data.get("message")
                        raise self._fail(f"stream error {code}: {message}")
        except CALL_ERRORS as exc:
            raise self._error(exc) from exc
        if final is None:
            raise self._fail("stream ended before response.completed")
        yield self._completion(request, final, "".join(parts))

    def warm_up(self) -> None:
        # The SDK imports its Responses resource on first use: CPU that would otherwise fall on
        # the first user's turn.
        _ = self._client.responses

    def _final_response(self, kind: str, payload: Any) -> dict[str, Any]:
        """The ``Response`` object of a ``response.completed``/``response.incomplete`` event.

        It is read as JSON, not validated as the SDK's model: servers speaking the Responses API
        (OpenAI's older and newer versions, gateways, local runtimes) send fields and values
        this SDK does not know, and omit some it requires. We take the few fields we need and
        treat each leniently; usage goes through :func:`responses_usage`.
        """
        if not isinstance(payload, dict):
            raise self._fail(f"{kind} carried no response object")
        return payload

    def _completion(
        self, request: CompletionRequest, response: dict[str, Any], text: str
    ) -> Completion:
        raw_usage = response.get("usage")
        usage = responses_usage(raw_usage)
        if usage is None:
            log.warning(
                "%s: response carried no usable usage (%s); charging an estimate",
                request.idempotency_key,
                "none" if raw_usage is None else "malformed",
            )
        text = text or _output_text(response.get("output"))
        finish = "stop"
        incomplete = response.get("incomplete_details")
        if isinstance(incomplete, dict) or response.get("status") == "incomplete":
            reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
            finish = "length" if reason == "max_output_tokens" else str(reason or "incomplete")
        model = response.get("model")
        response_id = response.get("id")
        return Completion(
            text=text,
            usage=usage_or_estimate(usage, request, text, dump_report(raw_usage)),
            model=model if isinstance(model, str) and model else request.params.model,
            response_id=response_id if isinstance(response_id, str) else None,
            finish_reason=finish,
        )


def _output_text(output: Any) -> str:
    """The text of a response's ``output_text`` parts, as the SDK's ``output_text`` gives it."""
    texts: list[str] = []
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict) or item.get("type") != "message":
            continue
        content = item.get("content")
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict) and part.get("type") == "output_text":
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
    return "".join(texts)


def _failure_message(response: Any) -> str:
    """Like the SDK model's ``response.error.message if response.error else "response failed"``."""
    error = response.get("error") if isinstance(response, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else "response failed"


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
