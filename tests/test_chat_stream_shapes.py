"""Chat Completions streams in the shapes compatible servers really send, through the raw reader.

The client decodes the event stream itself (no SDK chunk models), so it must be lenient about
everything that only shapes the answer (missing, null and unknown fields, chunks without
choices, any ``finish_reason``) and strict about the one thing that is billed: a usage report
whose counts are not non-negative whole numbers is not trusted, and the call is charged an
estimate that keeps the report for the audit. Each body is replayed byte for byte by the fake
server over real HTTP.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from assistants.estimate import estimate_prompt_tokens, estimate_text_tokens
from assistants.providers.openai_chat import OpenAIChatClient
from assistants.types import (
    ChatMessage,
    Completion,
    CompletionRequest,
    GenerationParams,
    StreamEvent,
    TextDelta,
)
from core.errors import ProviderError
from tests.fakes.llm_server import FakeLLMServer

USAGE = {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24}


@pytest.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as fake:
        yield fake


@pytest.fixture
async def client(server: FakeLLMServer) -> AsyncIterator[OpenAIChatClient]:
    made = OpenAIChatClient(api_key="sk-test", base_url=server.base_url, timeout=5.0)
    yield made
    await made.aclose()


def request() -> CompletionRequest:
    return CompletionRequest(
        system_prompt="Be brief.",
        messages=[ChatMessage("user", "Greet the team")],
        params=GenerationParams(model="asked-model", max_output_tokens=50),
        idempotency_key="shape-1",
    )


def sse(*events: dict[str, Any] | str, done: bool = True) -> bytes:
    lines = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
    return ("".join(lines) + ("data: [DONE]\n\n" if done else "")).encode()


def delta(content: Any = None, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    """A chunk with one choice; ``content`` omitted from the delta when it is ``...``."""
    body: dict[str, Any] = dict(fields)
    if content is not ...:
        body["content"] = content
    return {
        "id": "chatcmpl-1",
        "model": "served-model",
        "choices": [{"index": 0, "delta": body, "finish_reason": finish}],
    }


async def run(client: OpenAIChatClient) -> tuple[list[str], Completion]:
    events: list[StreamEvent] = [e async for e in client.stream(request())]
    *deltas, last = events
    assert isinstance(last, Completion)
    return [d.text for d in deltas if isinstance(d, TextDelta)], last


async def test_lenient_about_everything_that_only_shapes_the_answer(
    client: OpenAIChatClient, server: FakeLLMServer
) -> None:
    server.replay_next(
        sse(
            # Azure's leading chunk: no id, no model, no choices at all.
            {"prompt_filter_results": [{"prompt_index": 0}]},
            # Role-only first chunk, no content key.
            delta(..., role="assistant"),
            delta(None),  # content null
            {"id": "chatcmpl-1", "choices": None},  # choices null
            {"id": "chatcmpl-1", "choices": ["not an object", 7]},
            delta("Hello", vendor_extension={"anything": [1, 2]}),
            # A reasoning delta is not part of the answer.
            delta(..., reasoning_content="thinking about greetings"),
            delta(""),  # empty content: no delta event
            delta(" team"),
            {**delta(..., "stop"), "unknown_top_level": True},
            # OpenAI's usage chunk: empty choices, usage only.
            {"id": "chatcmpl-1", "choices": [], "usage": USAGE},
        )
    )

    deltas, completion = await run(client)

    assert deltas == ["Hello", " team"]
    assert completion.text == "Hello team"
    assert completion.model == "served-model"
    assert completion.response_id == "chatcmpl-1"
    assert completion.finish_reason == "stop"
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (21, 3)
    assert not completion.usage.estimated


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        (["length"], "length"),
        (["content_filter"], "content_filter"),
        (["tool_calls"], "tool_calls"),
        # Later chunks with a null reason (the usage chunk) keep the one given.
        (["stop", None], "stop"),
        ([None], None),  # a server that never says why it stopped
    ],
)
async def test_finish_reason_is_taken_as_sent(
    client: OpenAIChatClient,
    server: FakeLLMServer,
    reasons: list[str | None],
    expected: str | None,
) -> None:
    server.replay_next(
        sse(delta("Hi"), *(delta(..., reason) for reason in reasons), {"usage": USAGE})
    )

    _, completion = await run(client)

    assert completion.finish_reason == expected
    assert completion.text == "Hi" and not completion.usage.estimated


async def test_usage_found_on_the_finish_chunk_and_a_null_usage_after_it_changes_nothing(
    client: OpenAIChatClient, server: FakeLLMServer
) -> None:
    server.replay_next(sse(delta("Hi"), {**delta(..., "stop"), "usage": USAGE}, {"usage": None}))

    _, completion = await run(client)

    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (21, 3)
    assert not completion.usage.estimated


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": "21", "completion_tokens": 3},  # counts as text
        {"prompt_tokens": 21, "completion_tokens": -3},  # negative
        {"prompt_tokens": True, "completion_tokens": 3},  # a boolean is not a count
        {"prompt_tokens": 21.5, "completion_tokens": 3},  # not a whole number
        {"prompt_tokens": 21},  # output missing
        {"total_tokens": 24},  # nothing we can split
        ["not", "an", "object"],
    ],
)
async def test_an_untrustworthy_usage_report_is_charged_an_estimate_and_kept(
    client: OpenAIChatClient, server: FakeLLMServer, usage: Any
) -> None:
    server.replay_next(
        sse(delta("Hello team"), delta(..., "stop"), {"choices": [], "usage": usage})
    )

    _, completion = await run(client)

    assert completion.text == "Hello team"
    assert completion.usage.estimated
    assert completion.usage.input_tokens == estimate_prompt_tokens(request())
    assert completion.usage.output_tokens == estimate_text_tokens("Hello team")
    assert completion.usage.report is not None
    assert json.loads(completion.usage.report) == usage


async def test_whole_float_counts_are_billed_as_counts(
    client: OpenAIChatClient, server: FakeLLMServer
) -> None:
    usage = {"prompt_tokens": 21.0, "completion_tokens": 3.0}
    server.replay_next(sse(delta("Hi", "stop"), {"choices": [], "usage": usage}))

    _, completion = await run(client)

    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (21, 3)
    assert not completion.usage.estimated


async def test_a_stream_without_usage_is_charged_an_estimate(
    client: OpenAIChatClient, server: FakeLLMServer
) -> None:
    server.replay_next(sse(delta("Hello team"), delta(..., "stop"), done=False))

    _, completion = await run(client)

    assert completion.usage.estimated and completion.usage.report is None
    assert completion.usage.output_tokens == estimate_text_tokens("Hello team")


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ({"message": "model overloaded", "type": "server_error"}, "model overloaded"),
        ({"code": 500}, "An error occurred during streaming"),
        ("upstream exploded", "An error occurred during streaming"),
    ],
)
async def test_an_error_event_fails_the_call_and_nothing_is_completed(
    client: OpenAIChatClient, server: FakeLLMServer, error: Any, message: str
) -> None:
    server.replay_next(sse(delta("Hel"), {"error": error}, delta("lo"), {"usage": USAGE}))
    received: list[StreamEvent] = []

    with pytest.raises(ProviderError, match=message):
        async for event in client.stream(request()):
            received.append(event)

    assert [e.text for e in received if isinstance(e, TextDelta)] == ["Hel"]
    assert not any(isinstance(e, Completion) for e in received)


async def test_data_that_is_not_json_fails_the_call(
    client: OpenAIChatClient, server: FakeLLMServer
) -> None:
    server.replay_next(sse(delta("Hi"), '{"choices": [', {"usage": USAGE}))

    with pytest.raises(ProviderError, match="JSONDecodeError"):
        async for _ in client.stream(request()):
            pass
