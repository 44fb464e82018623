"""OpenAI Responses API client (provider ``openai``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from openai import omit
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
