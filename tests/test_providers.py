"""Provider clients against the fake LLM server, over real HTTP through the official SDKs."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import cast

import anthropic
import openai
import pytest

from assistants.estimate import estimate_prompt_tokens, estimate_text_tokens
from assistants.providers.anthropic import AnthropicClient
from assistants.providers.factory import build_provider_clients
from assistants.providers.openai_base import OpenAIClientBase
from assistants.providers.openai_chat import OpenAIChatClient
from assistants.providers.openai_responses import OpenAIResponsesClient
from assistants.types import (
    ChatMessage,
    Completion,
    CompletionRequest,
    GenerationParams,
    ImageInput,
    ProviderClient,
    StreamEvent,
    TextDelta,
    Usage,
)
from core.errors import ProviderError
from tests.fakes.llm_server import IMAGE_TOKENS, FakeLLMServer, StreamBreak

API_KEY = "sk-test-0123456789abcdef-SECRET"
PROVIDERS = ("openai", "openai_chat", "anthropic")
PNG = b"\x89PNG\r\n\x1a\nfake-image-bytes"

Factory = Callable[[FakeLLMServer, float], ProviderClient]
FACTORIES: dict[str, Factory] = {
    "openai": lambda s, t: OpenAIResponsesClient(api_key=API_KEY, base_url=s.base_url, timeout=t),
    "openai_chat": lambda s, t: OpenAIChatClient(api_key=API_KEY, base_url=s.base_url, timeout=t),
    "anthropic": lambda s, t: AnthropicClient(
        api_key=API_KEY, base_url=s.anthropic_base_url, timeout=t
    ),
}


@pytest.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as fake:
        yield fake


@pytest.fixture(params=PROVIDERS)
async def client(
    request: pytest.FixtureRequest, server: FakeLLMServer
) -> AsyncIterator[ProviderClient]:
    made = FACTORIES[request.param](server, 5.0)
    yield made
    await made.aclose()


@pytest.fixture(params=["openai", "openai_chat"])
async def openai_client(
    request: pytest.FixtureRequest, server: FakeLLMServer
) -> AsyncIterator[OpenAIClientBase]:
    made = FACTORIES[request.param](server, 5.0)
    assert isinstance(made, OpenAIClientBase)
    yield made
    await made.aclose()


def make_request(
    *,
    system: str | None = "You are terse.",
    messages: tuple[ChatMessage, ...] = (ChatMessage("user", "Say hello to the team"),),
    max_output_tokens: int = 200,
    temperature: float | None = None,
    top_p: float | None = None,
    frequency_penalty: float | None = None,
    presence_penalty: float | None = None,
    key: str = "turn-1",
) -> CompletionRequest:
    return CompletionRequest(
        system_prompt=system,
        messages=messages,
        params=GenerationParams(
            model="test-model",
            max_output_tokens=max_output_tokens,
            temperature=temperature,
            top_p=top_p,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
        ),
        idempotency_key=key,
    )


async def collect(client: ProviderClient, request: CompletionRequest) -> list[StreamEvent]:
    return [event async for event in client.stream(request)]


def split(events: list[StreamEvent]) -> tuple[list[TextDelta], Completion]:
    *deltas, last = events
    assert all(isinstance(event, TextDelta) for event in deltas)
    assert isinstance(last, Completion)
    return [d for d in deltas if isinstance(d, TextDelta)], last


def server_usage(server: FakeLLMServer) -> Usage:
    assert server.last_usage is not None
    return Usage(
        input_tokens=server.last_usage["input"],
        cached_input_tokens=server.last_usage["cached"],
        output_tokens=server.last_usage["output"],
        reasoning_tokens=server.last_usage["reasoning"],
    )


# -- streaming and usage -----------------------------------------------------------------------


async def test_stream_concatenates_to_reply(client: ProviderClient, server: FakeLLMServer) -> None:
    deltas, completion = split(await collect(client, make_request()))

    assert len(deltas) > 1  # chunk_size 4: really streamed
    assert "".join(d.text for d in deltas) == server.reply_text
    assert completion.text == server.reply_text
    assert completion.model == "test-model"
    assert completion.finish_reason == "stop"
    assert completion.response_id


async def test_usage_equals_server_report(client: ProviderClient, server: FakeLLMServer) -> None:
    _, completion = split(await collect(client, make_request()))

    body = server.last_request.json
    assert completion.usage == server_usage(server)
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == server.usage_for(body)
    # "You are terse." + "Say hello to the team": 3 + 5 words, 3 per message (system included).
    assert completion.usage == Usage(input_tokens=14, output_tokens=5)


async def test_cached_and_reasoning_tokens(client: ProviderClient, server: FakeLLMServer) -> None:
    server.cached_tokens = 6
    server.reasoning_tokens = 7

    _, completion = split(await collect(client, make_request()))

    assert completion.usage == server_usage(server)
    assert completion.usage == Usage(
        input_tokens=14, cached_input_tokens=6, output_tokens=12, reasoning_tokens=7
    )


async def test_reply_cut_at_max_output_tokens(
    client: ProviderClient, server: FakeLLMServer
) -> None:
    server.reply_text = "one two three four five six"

    deltas, completion = split(await collect(client, make_request(max_output_tokens=3)))

    assert "".join(d.text for d in deltas) == "one two three"
    assert completion.finish_reason == "length"
    assert completion.usage.output_tokens == 3


async def test_max_output_tokens_cover_reasoning(
    client: ProviderClient, server: FakeLLMServer
) -> None:
    server.reply_text = "one two three four five six"
    server.reasoning_tokens = 2

    _, completion = split(await collect(client, make_request(max_output_tokens=4)))

    assert completion.text == "one two"
    assert completion.usage.output_tokens == 4
    assert completion.usage.reasoning_tokens == 2


async def test_reply_fn_sees_request(client: ProviderClient, server: FakeLLMServer) -> None:
    server.reply_fn = lambda body: f"echo {server.model_seen}"

    _, completion = split(await collect(client, make_request()))

    assert completion.text == "echo test-model"


async def test_consumer_may_stop_early(client: ProviderClient, server: FakeLLMServer) -> None:
    server.reply_text = "word " * 200
    stream = cast(AsyncGenerator[StreamEvent, None], client.stream(make_request()))
    first = await anext(stream)
    await stream.aclose()

    assert isinstance(first, TextDelta)
    # The connection was released: the next call works.
    split(await collect(client, make_request()))


# -- what lands in the request -------------------------------------------------------------------


async def test_request_body_carries_params(client: ProviderClient, server: FakeLLMServer) -> None:
    request = make_request(
        max_output_tokens=123,
        temperature=0.25,
        top_p=0.5,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        messages=(
            ChatMessage("user", "first question"),
            ChatMessage("assistant", "first answer"),
            ChatMessage("user", "second question"),
        ),
    )
    await collect(client, request)

    body = server.last_request.json
    assert server.model_seen == "test-model"
    assert body["stream"] is True
    if client.name == "openai":
        assert body["instructions"] == "You are terse."
        assert body["max_output_tokens"] == 123
        assert (body["temperature"], body["top_p"]) == (0.25, 0.5)
        assert "frequency_penalty" not in body and "presence_penalty" not in body
        assert body["store"] is False
        assert [m["role"] for m in body["input"]] == ["user", "assistant", "user"]
        assert body["input"][1]["content"] == "first answer"
    elif client.name == "openai_chat":
        assert body["messages"][0] == {"role": "system", "content": "You are terse."}
        assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
        assert body["max_tokens"] == 123
        assert (body["temperature"], body["top_p"]) == (0.25, 0.5)
        assert (body["frequency_penalty"], body["presence_penalty"]) == (0.1, 0.2)
        assert body["stream_options"] == {"include_usage": True}
    else:
        assert body["system"] == "You are terse."
        assert body["max_tokens"] == 123
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
        # API version 2026-10-21 rejects every sampling parameter; penalties never existed.
        for key in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
            assert key not in body


async def test_unset_params_are_not_sent(client: ProviderClient, server: FakeLLMServer) -> None:
    await collect(client, make_request(system=None))

    body = server.last_request.json
    for key in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
        assert key not in body
    assert "instructions" not in body and "system" not in body
    if client.name == "openai_chat":
        assert body["messages"][0]["role"] == "user"


async def test_idempotency_key_header(client: ProviderClient, server: FakeLLMServer) -> None:
    await collect(client, make_request(key="usage-event-42"))

    assert server.last_request.headers["Idempotency-Key"] == "usage-event-42"


async def test_images_are_encoded(client: ProviderClient, server: FakeLLMServer) -> None:
    image = ImageInput(PNG, "image/png")
    message = ChatMessage("user", "What is in this picture", images=(image,))

    _, completion = split(await collect(client, make_request(messages=(message,))))

    encoded = base64.b64encode(PNG).decode()
    body = server.last_request.json
    if client.name == "openai":
        parts = body["input"][0]["content"]
        assert parts[0] == {"type": "input_text", "text": "What is in this picture"}
        assert parts[1]["type"] == "input_image"
        assert parts[1]["image_url"] == f"data:image/png;base64,{encoded}"
    elif client.name == "openai_chat":
        parts = body["messages"][1]["content"]
        assert parts[0] == {"type": "text", "text": "What is in this picture"}
        assert parts[1] == {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{encoded}"},
        }
    else:
        blocks = body["messages"][0]["content"]
        assert blocks[0] == {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": encoded},
        }
        assert blocks[1] == {"type": "text", "text": "What is in this picture"}
    # 3 + 3 words (system) + 3 + 5 words + one image.
    assert completion.usage.input_tokens == 14 + IMAGE_TOKENS


# -- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 429, 400])
async def test_http_error(client: ProviderClient, server: FakeLLMServer, status: int) -> None:
    server.fail_next(status=status)

    with pytest.raises(ProviderError) as caught:
        await collect(client, make_request())

    assert caught.value.status == status
    assert caught.value.provider == client.name
    assert str(status) in str(caught.value)
    split(await collect(client, make_request()))  # only the next call failed


async def test_error_detail_never_contains_api_key(
    client: ProviderClient, server: FakeLLMServer
) -> None:
    server.fail_next(status=401, message=f"Incorrect API key provided: {API_KEY}")

    with pytest.raises(ProviderError) as caught:
        await collect(client, make_request())

    assert caught.value.status == 401
    assert API_KEY not in str(caught.value)
    assert API_KEY not in caught.value.user_message


async def test_timeout(server: FakeLLMServer) -> None:
    for name in PROVIDERS:
        client = FACTORIES[name](server, 0.3)
        server.timeout_next()
        with pytest.raises(ProviderError) as caught:
            await collect(client, make_request())
        assert caught.value.status is None
        assert "timed out" in str(caught.value)
        await client.aclose()


async def test_cut_stream(client: ProviderClient, server: FakeLLMServer) -> None:
    server.cut_next()
    received: list[StreamEvent] = []

    with pytest.raises(ProviderError) as caught:
        async for event in client.stream(make_request()):
            received.append(event)

    assert received and all(isinstance(e, TextDelta) for e in received)
    assert caught.value.status is None
    assert caught.value.provider == client.name


async def test_consumer_stopping_early_closes_the_response(
    client: ProviderClient, server: FakeLLMServer
) -> None:
    # 250 deltas 20 ms apart: reading the body to its end would take 5 s.
    server.reply_text = "word " * 200
    server.delay = 0.02
    stream = cast(AsyncGenerator[StreamEvent, None], client.stream(make_request()))
    started = time.monotonic()
    assert isinstance(await anext(stream), TextDelta)
    await stream.aclose()

    assert time.monotonic() - started < 2.0
    server.reply_text, server.delay = "short answer", 0.0
    _, completion = split(await collect(client, make_request()))
    assert completion.text == "short answer"


async def test_cancelled_consumer_closes_the_response(
    client: ProviderClient, server: FakeLLMServer
) -> None:
    server.reply_text = "word " * 200
    server.delay = 0.02
    first = asyncio.Event()

    async def consume() -> None:
        async for _event in client.stream(make_request()):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 2.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2.0)
    server.reply_text, server.delay = "short answer", 0.0
    split(await collect(client, make_request()))


async def test_raw_unicode_in_stream_json(client: ProviderClient, server: FakeLLMServer) -> None:
    # JSON may carry U+2028/U+2029/U+0085 unescaped; they are no SSE line ends.
    server.raw_unicode = True
    server.reply_text = "line\u2028sep\u2029para\x85nel żółw 🐢 ✓ done"

    deltas, completion = split(await collect(client, make_request()))

    assert "".join(d.text for d in deltas) == server.reply_text
    assert completion.text == server.reply_text


# -- the Responses event stream, decoded by the client ------------------------------------------


@pytest.fixture
async def responses_client(server: FakeLLMServer) -> AsyncIterator[ProviderClient]:
    made = FACTORIES["openai"](server, 5.0)
    yield made
    await made.aclose()


@pytest.mark.parametrize(
    ("kind", "detail"),
    [
        ("failed", "openai: the model gave up"),
        ("error", "openai: stream error server_error: the model gave up"),
        # What the SDK's own stream raised for it, translated as every SDK error is.
        ("error_object", "openai: APIError: the model gave up"),
        ("garbled", "openai: JSONDecodeError: "),
    ],
)
async def test_bad_event_fails_the_stream(
    responses_client: ProviderClient, server: FakeLLMServer, kind: StreamBreak, detail: str
) -> None:
    server.break_stream_next(kind, message="the model gave up")
    received: list[StreamEvent] = []

    with pytest.raises(ProviderError) as caught:
        async for event in responses_client.stream(make_request()):
            received.append(event)

    assert str(caught.value).startswith(detail)
    assert caught.value.status is None
    assert len(received) == server.cut_after_deltas
    assert all(isinstance(e, TextDelta) for e in received)
    split(await collect(responses_client, make_request()))  # only that stream was broken


async def test_stream_ending_without_completed(
    responses_client: ProviderClient, server: FakeLLMServer
) -> None:
    server.break_stream_next("end")
    received: list[StreamEvent] = []

    with pytest.raises(ProviderError) as caught:
        async for event in responses_client.stream(make_request()):
            received.append(event)

    assert str(caught.value) == "openai: stream ended before response.completed"
    assert len(received) == server.cut_after_deltas


async def test_response_from_a_newer_api_is_accepted(
    responses_client: ProviderClient, server: FakeLLMServer
) -> None:
    # Values this SDK's models do not know yet fail strict validation of the final Response;
    # the answer is kept (built leniently, as the SDK's typed stream did) with its usage.
    server.response_extra = {
        "service_tier": "tier-from-the-future",
        "tools": [{"type": "tool-from-the-future"}],
    }

    _, completion = split(await collect(responses_client, make_request()))

    assert completion.text == server.reply_text
    assert completion.usage == server_usage(server)
    assert completion.finish_reason == "stop"
    assert completion.response_id and completion.model == "test-model"


async def test_malformed_usage_is_estimated_and_kept(
    responses_client: ProviderClient, server: FakeLLMServer
) -> None:
    # The answer was generated (and billed by the provider): it is delivered and charged on an
    # estimate, with the provider's unusable report kept for the audit.
    server.response_extra = {"usage": {"input_tokens": "many", "output_tokens": 5}}

    _, completion = split(await collect(responses_client, make_request()))

    assert completion.text == server.reply_text
    assert completion.usage.estimated
    assert completion.usage.input_tokens == estimate_prompt_tokens(make_request())
    assert completion.usage.output_tokens == estimate_text_tokens(server.reply_text)
    assert json.loads(completion.usage.report or "") == {"input_tokens": "many", "output_tokens": 5}


async def test_missing_usage_is_estimated(
    responses_client: ProviderClient, server: FakeLLMServer
) -> None:
    server.response_extra = {"usage": None}

    _, completion = split(await collect(responses_client, make_request()))

    assert completion.text == server.reply_text
    assert completion.usage.estimated and completion.usage.report is None
    assert completion.usage.billable_tokens > 0


async def test_unsupported_image_type_for_anthropic(server: FakeLLMServer) -> None:
    client = FACTORIES["anthropic"](server, 5.0)
    message = ChatMessage("user", "look", images=(ImageInput(b"x", "image/bmp"),))

    with pytest.raises(ProviderError, match="image/bmp"):
        await collect(client, make_request(messages=(message,)))
    assert server.requests == []
    await client.aclose()


# -- transcription -------------------------------------------------------------------------------


async def test_transcription_with_duration_usage(
    openai_client: OpenAIClientBase, server: FakeLLMServer
) -> None:
    result = await openai_client.transcribe(b"OggS" + b"\0" * 3000, "voice.ogg")

    assert result.text == "transcribed voice message"
    assert result.model == "whisper-1"
    assert result.usage == Usage()
    recorded = server.last_request
    assert recorded.path == "/v1/audio/transcriptions"
    assert recorded.json == {"file": "voice.ogg", "model": "whisper-1"}
    assert recorded.files["file"] == b"OggS" + b"\0" * 3000


async def test_transcription_with_token_usage(
    openai_client: OpenAIClientBase, server: FakeLLMServer
) -> None:
    server.transcript_text = "please draft a post"

    result = await openai_client.transcribe(b"\0" * 5000, "voice.ogg", model="gpt-4o-transcribe")

    assert result.usage == Usage(input_tokens=5, output_tokens=4)
    assert result.usage == server_usage(server)


async def test_transcription_error(openai_client: OpenAIClientBase, server: FakeLLMServer) -> None:
    server.fail_next(status=503)

    with pytest.raises(ProviderError) as caught:
        await openai_client.transcribe(b"\0", "voice.ogg")

    assert caught.value.status == 503


# -- configuration -------------------------------------------------------------------------------


async def test_factory_builds_configured_providers(server: FakeLLMServer) -> None:
    both = build_provider_clients(
        openai_api_key=None,
        openai_base_url=server.base_url,
        anthropic_api_key="a-key",
        anthropic_base_url=f"{server.origin}/v1/",  # trailing /v1 is tolerated
        timeout=5.0,
    )
    none = build_provider_clients(
        openai_api_key=None,
        openai_base_url=None,
        anthropic_api_key=None,
        anthropic_base_url=None,
        timeout=5.0,
    )
    try:
        assert none == {}
        assert sorted(both) == ["anthropic", "openai", "openai_chat"]
        for name, client in both.items():
            assert client.name == name
            _, completion = split(await collect(client, make_request()))
            assert completion.text == server.reply_text
        assert server.last_request.headers["Authorization"] == "Bearer a-key"
        assert server.requests[0].headers["Authorization"] == "Bearer unused"
    finally:
        for client in both.values():
            await client.aclose()


async def test_factory_openai_only() -> None:
    clients = build_provider_clients(
        openai_api_key="sk-x",
        openai_base_url=None,
        anthropic_api_key=None,
        anthropic_base_url=None,
        timeout=5.0,
    )
    assert sorted(clients) == ["openai", "openai_chat"]
    for client in clients.values():
        await client.aclose()


# -- the fake server's non-streaming answers stay valid for the SDKs -----------------------------


async def test_fake_server_non_streaming(server: FakeLLMServer) -> None:
    oai = openai.AsyncOpenAI(api_key="k", base_url=server.base_url, max_retries=0)
    claude = anthropic.AsyncAnthropic(
        api_key="k", base_url=server.anthropic_base_url, max_retries=0
    )
    try:
        response = await oai.responses.create(model="m", input="hi")
        assert response.output_text == server.reply_text
        assert response.usage is not None and response.usage.input_tokens == 4

        chat = await oai.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        assert chat.choices[0].message.content == server.reply_text
        assert chat.usage is not None and chat.usage.completion_tokens == 5

        message = await claude.messages.create(
            model="m", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
        assert message.content[0].type == "text"
        assert message.content[0].text == server.reply_text
        assert message.usage.output_tokens == 5
    finally:
        await oai.close()
        await claude.close()


# -- Chat Completions streams as compatible servers end them --------------------------------------

RECORDED_CHAT = Path(__file__).parent / "conformance/recordings/openai-chat-gpt4o-mini-usage-chunk"


@pytest.fixture
async def chat_client(server: FakeLLMServer) -> AsyncIterator[ProviderClient]:
    made = FACTORIES["openai_chat"](server, 5.0)
    yield made
    await made.aclose()


async def test_chat_stream_without_done_is_complete(
    chat_client: ProviderClient, server: FakeLLMServer
) -> None:
    # A real OpenAI stream with its final ``data: [DONE]`` removed, as some servers end theirs.
    body = (RECORDED_CHAT.with_suffix(".sse")).read_bytes()
    assert body.endswith(b"data: [DONE]\n\n")
    server.replay_next(body.removesuffix(b"data: [DONE]\n\n"))

    _, completion = split(await collect(chat_client, make_request()))

    meta = json.loads(RECORDED_CHAT.with_suffix(".json").read_text())
    assert completion.text == meta["text"]
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (22, 2)
    assert completion.model == "gpt-4o-mini-2024-07-18" and completion.finish_reason == "stop"


async def test_chat_error_chunk_fails_the_stream(
    chat_client: ProviderClient, server: FakeLLMServer
) -> None:
    # What OpenAI-compatible servers send when generation fails after the headers went out.
    head = (RECORDED_CHAT.with_suffix(".sse")).read_bytes().split(b"\n\n")[:2]
    error = b'data: {"error": {"message": "model overloaded", "type": "server_error"}}'
    server.replay_next(b"\n\n".join([*head, error]) + b"\n\n")
    received: list[StreamEvent] = []

    with pytest.raises(ProviderError, match="model overloaded"):
        async for event in chat_client.stream(make_request()):
            received.append(event)

    assert all(isinstance(e, TextDelta) for e in received)
