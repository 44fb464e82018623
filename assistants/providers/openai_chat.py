"""OpenAI Chat Completions client (provider ``openai_chat``), for OpenAI-compatible servers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from openai.types.chat import (
    ChatCompletionContentPartImageParam,
    ChatCompletionContentPartParam,
    ChatCompletionContentPartTextParam,
    ChatCompletionMessageParam,
)

from assistants.estimate import usage_or_estimate
from assistants.providers.openai_base import (
    CALL_ERRORS,
    OpenAIClientBase,
    data_url,
    stream_api_error,
)
from assistants.providers.usage_report import chat_usage, dump_report
from assistants.types import (
    ChatMessage,
    Completion,
    CompletionRequest,
    ProviderName,
    StreamEvent,
    TextDelta,
)

log = logging.getLogger(__name__)

MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]


class OpenAIChatClient(OpenAIClientBase):
    """Chat Completions (``POST /chat/completions``), streamed with ``include_usage``.

    The stream is read raw and decoded here, chunk by chunk as JSON, not as the SDK's models:
    compatible servers send chunks those models do not describe (Azure's leading
    ``prompt_filter_results`` chunk with no choices and no model, usage on the finish chunk or
    in Groq's ``x_groq``, no ``[DONE]`` at the end), and the typed stream costs more CPU than the
    text it carries. Usage is normalised by :func:`chat_usage`.

    The system prompt is the first (``system``) message; images are ``image_url`` parts with data
    URLs. Every sampling parameter of :class:`GenerationParams` is supported here.

    ``max_tokens_param`` names the output cap field: compatible servers (vLLM, Ollama, llama.cpp,
    LM Studio) all honour ``max_tokens``, which OpenAI itself accepts for non-reasoning models;
    use ``max_completion_tokens`` for OpenAI reasoning models.
    """

    name: ProviderName = "openai_chat"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int = 0,
        max_tokens_param: MaxTokensParam = "max_tokens",
    ) -> None:
        super().__init__(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self._max_tokens_param: MaxTokensParam = max_tokens_param

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        params = request.params
        parts: list[str] = []
        raw_usage: Any = None
        finish: str | None = None
        model = ""
        response_id: str | None = None
        try:
            async with self._client.chat.completions.with_streaming_response.create(
                model=params.model,
                # The request goes into the body as it is (``extra_body`` replaces these keys):
                # the SDK would walk every message and parameter through its TypedDict transform
                # (about 1 ms of CPU for a two-message request, more than reading the whole
                # answer), and ours are plain JSON already.
                messages=[],
                stream=True,
                extra_headers=self._headers(request),
                extra_body=_body(request, self._max_tokens_param),
            ) as raw:
                async for chunk in self._read(raw):
                    if chunk.get("error"):
                        # As the SDK's stream does for a chunk carrying an error object.
                        raise stream_api_error(chunk["error"], raw.http_response.request)
                    model = model or _text(chunk.get("model"))
                    response_id = response_id or _text(chunk.get("id")) or None
                    raw_usage = _chunk_usage(chunk) or raw_usage
                    choices = chunk.get("choices")
                    for choice in choices if isinstance(choices, list) else ():
                        if not isinstance(choice, dict):
                            continue
                        finish = _text(choice.get("finish_reason")) or finish
                        delta = choice.get("delta")
                        content = delta.get("content") if isinstance(delta, dict) else None
                        if isinstance(content, str) and content:
                            parts.append(content)
                            yield TextDelta(content)
        except CALL_ERRORS as exc:
            raise self._error(exc) from exc
        text = "".join(parts)
        usage = chat_usage(raw_usage)
        if usage is None:
            # The body ended cleanly (a cut one raised above): the answer is whole, only its
            # usage is missing (a server that ignores include_usage) or unreadable.
            log.warning(
                "%s: stream ended without usable usage (%s); charging an estimate",
                request.idempotency_key,
                "none" if raw_usage is None else "malformed",
            )
        yield Completion(
            text=text,
            usage=usage_or_estimate(usage, request, text, dump_report(raw_usage)),
            model=model or params.model,
            response_id=response_id,
            finish_reason=finish,
        )


def _chunk_usage(chunk: dict[str, Any]) -> Any:
    """A chunk's usage report: ``usage`` (OpenAI and most), or Groq's ``x_groq.usage``."""
    usage = chunk.get("usage")
    if usage:
        return usage
    groq = chunk.get("x_groq")
    return groq.get("usage") if isinstance(groq, dict) else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _body(request: CompletionRequest, max_tokens_param: MaxTokensParam) -> dict[str, object]:
    """The JSON body of a streamed ``/chat/completions`` call; unset sampling parameters are
    left out, so the server's defaults apply."""
    params = request.params
    body: dict[str, object] = {
        "model": params.model,
        "messages": _messages(request.system_prompt, request.messages),
        "stream": True,
        "stream_options": {"include_usage": True},
        max_tokens_param: params.max_output_tokens,
    }
    for name, value in (
        ("temperature", params.temperature),
        ("top_p", params.top_p),
        ("frequency_penalty", params.frequency_penalty),
        ("presence_penalty", params.presence_penalty),
    ):
        if value is not None:
            body[name] = value
    return body


def _messages(
    system_prompt: str | None, messages: Sequence[ChatMessage]
) -> list[ChatCompletionMessageParam]:
    result: list[ChatCompletionMessageParam] = []
    if system_prompt:
        result.append({"role": "system", "content": system_prompt})
    for message in messages:
        if message.role == "assistant":
            result.append({"role": "assistant", "content": message.content})
        elif not message.images:
            result.append({"role": "user", "content": message.content})
        else:
            result.append({"role": "user", "content": _user_parts(message)})
    return result


def _user_parts(message: ChatMessage) -> list[ChatCompletionContentPartParam]:
    parts: list[ChatCompletionContentPartParam] = []
    if message.content:
        text: ChatCompletionContentPartTextParam = {"type": "text", "text": message.content}
        parts.append(text)
    for image in message.images:
        picture: ChatCompletionContentPartImageParam = {
            "type": "image_url",
            "image_url": {"url": data_url(image)},
        }
        parts.append(picture)
    return parts
