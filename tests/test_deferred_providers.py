"""Provider clients are built, and their SDKs imported, on first use: not at start-up."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from assistants.providers.deferred import DeferredClient
from assistants.providers.factory import build_provider_clients
from assistants.types import ChatMessage, Completion, CompletionRequest, GenerationParams
from tests.fakes.llm_server import FakeLLMServer

ROOT = Path(__file__).resolve().parents[1]


def test_building_the_clients_imports_no_sdk_until_warm_up() -> None:
    # A fresh interpreter: this one has imported the SDKs long ago.
    script = textwrap.dedent(
        """
        import sys
        from assistants.providers.factory import build_provider_clients

        clients = build_provider_clients(
            openai_api_key="sk-x", openai_base_url=None,
            anthropic_api_key="a-x", anthropic_base_url=None, timeout=5.0,
        )
        print(sorted(clients), "openai" in sys.modules, "anthropic" in sys.modules)
        clients["openai_chat"].warm_up()
        print("openai" in sys.modules, "anthropic" in sys.modules)
        clients["anthropic"].warm_up()
        print("anthropic" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )

    assert result.stdout.splitlines() == [
        "['anthropic', 'openai', 'openai_chat'] False False",
        "True False",
        "True",
    ]


async def test_a_deferred_client_streams_and_forwards_what_it_lacks() -> None:
    async with FakeLLMServer() as server:
        clients = build_provider_clients(
            openai_api_key=None,
            openai_base_url=server.base_url,
            anthropic_api_key=None,
            anthropic_base_url=None,
            timeout=5.0,
        )
        chat = clients["openai_chat"]
        assert isinstance(chat, DeferredClient) and not chat.built
        try:
            request = CompletionRequest(
                system_prompt=None,
                messages=[ChatMessage("user", "hi")],
                params=GenerationParams(model="m", max_output_tokens=20),
                idempotency_key="deferred-1",
            )
            events = [event async for event in chat.stream(request)]
            assert chat.built
            last = events[-1]
            assert isinstance(last, Completion) and last.text == server.reply_text
            # transcribe is the real client's, reached through the stand-in.
            transcription = await chat.transcribe(b"OggS", "voice.ogg")
            assert transcription.text == server.transcript_text
        finally:
            for client in clients.values():
                await client.aclose()
        assert not clients["openai"].built


def test_the_client_is_built_once_when_threads_race() -> None:
    built: list[object] = []
    start = threading.Barrier(8)

    def build() -> object:
        built.append(object())
        return built[-1]

    deferred = DeferredClient("openai", build)  # type: ignore[arg-type]

    def resolve() -> None:
        start.wait()
        deferred.resolve()

    threads = [threading.Thread(target=resolve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(built) == 1 and deferred.resolve() is built[0]


async def test_closing_a_client_never_used_builds_nothing() -> None:
    def build() -> object:
        raise AssertionError("built on close")

    deferred = DeferredClient("anthropic", build)  # type: ignore[arg-type]

    await deferred.aclose()

    assert not deferred.built


async def test_a_turn_waiting_for_the_build_leaves_the_event_loop_serving() -> None:
    """Turns arriving while the warm-up thread imports the SDK (~0.5 s of CPU) wait for it in a
    worker thread: the event loop goes on serving the others meanwhile."""
    from assistants.providers.openai_chat import OpenAIChatClient

    importing = threading.Event()
    imported = threading.Event()

    async with FakeLLMServer() as server:

        def build() -> OpenAIChatClient:
            importing.set()
            assert imported.wait(5), "the event loop never got to say the import may end"
            return OpenAIChatClient(
                api_key=None, base_url=server.base_url, timeout=5.0, max_retries=0
            )

        deferred = DeferredClient("openai_chat", build)  # type: ignore[arg-type]
        warm_up = threading.Thread(target=deferred.resolve)
        warm_up.start()
        assert importing.wait(5)
        request = CompletionRequest(
            system_prompt=None,
            messages=[ChatMessage("user", "hi")],
            params=GenerationParams(model="m", max_output_tokens=20),
            idempotency_key="deferred-2",
        )

        async def collect() -> list[object]:
            return [event async for event in deferred.stream(request)]

        turn = asyncio.create_task(collect())
        await asyncio.sleep(0.05)  # the loop runs: the turn is waiting off the loop
        assert not turn.done()
        imported.set()
        events = await asyncio.wait_for(turn, 10)
        warm_up.join()
        try:
            last = events[-1]
            assert isinstance(last, Completion) and last.text == server.reply_text
        finally:
            await deferred.aclose()
