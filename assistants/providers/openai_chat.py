"""OpenAI Chat Completions client (provider ``openai_chat``), for OpenAI-compatible servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Literal

from openai import omit
from openai.types import CompletionUsage
from openai.types.chat import (
    ChatCompletionContentPartImageParam,
    ChatCompletionContentPartParam,
    ChatCompletionContentPartTextParam,
    ChatCompletionMessageParam,
)

from assistants.providers.openai_base import CALL_ERRORS, OpenAIClientBase, data_url
from assistants.types import (
    ChatMessage,
    Completion,
    CompletionRequest,
    ProviderName,
    StreamEvent,
    TextDelta,
    Usage,
)

MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]


class OpenAIChatClient(OpenAIClientBase):
    """Chat Completions (``POST /chat/completions``), streamed with ``include_usage``.

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
        usage: CompletionUsage | None = None
        finish: str | None = None
        model = params.model
        response_id: str | None = None
        cap = params.max_output_tokens
        try:
            chunks = await self._client.chat.completions.create(
                model=params.model,
                messages=_messages(request.system_prompt, request.messages),
                stream=True,
                stream_options={"include_usage": True},
                temperature=params.temperature if params.temperature is not None else omit,
                top_p=params.top_p if params.top_p is not None else omit,
                frequency_penalty=(
                    params.frequency_penalty if params.frequency_penalty is not None else omit
                ),
                presence_penalty=(
                    params.presence_penalty if params.presence_penalty is not None else omit
                ),
                max_tokens=cap if self._max_tokens_param == "max_tokens" else omit,
                max_completion_tokens=(
                    cap if self._max_tokens_param == "max_completion_tokens" else omit
                ),
                extra_headers=self._headers(request),
            )
            async with chunks:
                async for chunk in chunks:
                    model, response_id = chunk.model or model, chunk.id or response_id
                    if chunk.usage is not None:
                        usage = chunk.usage
                    for choice in chunk.choices:
                        if choice.finish_reason is not None:
                            finish = choice.finish_reason
                        if choice.delta.content:
                            parts.append(choice.delta.content)
                            yield TextDelta(choice.delta.content)
        except CALL_ERRORS as exc:
            raise self._error(exc) from exc
        if usage is None:
            # Without the final usage chunk the call cannot be metered: treat it as failed.
            raise self._fail("stream ended without the usage chunk")
        yield Completion(
            text="".join(parts),
            usage=_usage(usage),
            model=model,
            response_id=response_id,
            finish_reason=finish,
        )


def _usage(usage: CompletionUsage) -> Usage:
    prompt_details = usage.prompt_tokens_details
    completion_details = usage.completion_tokens_details
    return Usage(
        input_tokens=usage.prompt_tokens,
        cached_input_tokens=(prompt_details.cached_tokens or 0) if prompt_details else 0,
        output_tokens=usage.completion_tokens,
        reasoning_tokens=(completion_details.reasoning_tokens or 0) if completion_details else 0,
    )


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
