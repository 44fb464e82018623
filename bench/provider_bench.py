"""CPU cost of one streamed answer through our provider clients, beside the bare SDK streams.

Every loop streams the same answer (312 characters in 20 deltas by default) from the fake LLM
server over real local HTTP. The server runs in this process, so its CPU is in every number; the
bare SDK loops (``responses.create(stream=True)``, ``chat.completions.create(stream=True)``, the
SDK's typed event streams) are the baselines, and reading the raw body without parsing it is the
floor (the server and the transport). Blocks of the loops alternate so machine noise hits all
alike; the median block is reported.

``--against REV`` (repeatable) adds the clients as they were at git revision REV (their modules
loaded from ``git show``), so a change to a client is measured side by side with what it
replaces. Beside CPU ms per answer, each loop's stream chunks per CPU second are printed: a Chat
Completions answer's chunks are its deltas plus the role, finish and usage chunks; the same count
is used for the Responses loops, whose streams carry a few more framing events.

    .venv/bin/python bench/provider_bench.py [--answers 300] [--blocks 5] [--chunk-size 16]
                                             [--against REV ...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai

from assistants.providers.openai_chat import OpenAIChatClient
from assistants.providers.openai_responses import OpenAIResponsesClient
from assistants.types import ChatMessage, Completion, CompletionRequest, GenerationParams
from tests.fakes.llm_server import FakeLLMServer

REPLY = ("The quick brown fox jumps over the lazy dog; " * 7)[:312]
API_KEY = "sk-bench"
MODEL = "gpt-4o-mini"
QUESTION = "bench question"


def request(i: int) -> CompletionRequest:
    return CompletionRequest(
        system_prompt="You are a helpful assistant.",
        messages=[ChatMessage("user", QUESTION)],
        params=GenerationParams(model=MODEL, max_output_tokens=512),
        idempotency_key=f"bench-{i}",
    )


ROOT = Path(__file__).resolve().parents[1]


def client_at(revision: str, module: str, cls: str) -> type[Any]:
    """Class ``cls`` of ``assistants/providers/<module>.py`` as it was at git ``revision``."""
    source = subprocess.run(
        ["git", "show", f"{revision}:assistants/providers/{module}.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    namespace = types.ModuleType(f"baseline_{module}")
    exec(compile(source, f"{revision}:{module}.py", "exec"), namespace.__dict__)
    found: type[Any] = getattr(namespace, cls)
    return found


async def chat_sdk_loop(sdk: openai.AsyncOpenAI, n: int) -> None:
    for i in range(n):
        chunks = await sdk.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": QUESTION},
            ],
            max_tokens=512,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"Idempotency-Key": f"chat-sdk-{i}"},
        )
        parts: list[str] = []
        async with chunks:
            async for chunk in chunks:
                for choice in chunk.choices:
                    if choice.delta.content:
                        parts.append(choice.delta.content)
        assert "".join(parts) == REPLY


async def client_loop(client: Any, n: int) -> None:
    for i in range(n):
        last = None
        async for event in client.stream(request(i)):
            last = event
        assert isinstance(last, Completion) and last.text == REPLY, last


async def sdk_loop(sdk: openai.AsyncOpenAI, n: int) -> None:
    for i in range(n):
        events = await sdk.responses.create(
            model=MODEL,
            input=[{"role": "user", "content": QUESTION}],
            instructions="You are a helpful assistant.",
            max_output_tokens=512,
            store=False,
            stream=True,
            extra_headers={"Idempotency-Key": f"sdk-{i}"},
        )
        parts: list[str] = []
        async with events:
            async for event in events:
                if event.type == "response.output_text.delta":
                    parts.append(event.delta)
        assert "".join(parts) == REPLY


async def body_loop(sdk: openai.AsyncOpenAI, n: int) -> None:
    """The floor: the same request, its SSE body read and thrown away unparsed."""
    for i in range(n):
        async with sdk.responses.with_streaming_response.create(
            model=MODEL,
            input=[{"role": "user", "content": QUESTION}],
            instructions="You are a helpful assistant.",
            max_output_tokens=512,
            store=False,
            stream=True,
            extra_headers={"Idempotency-Key": f"raw-{i}"},
        ) as raw:
            async for _chunk in raw.iter_bytes():
                pass


async def chat_body_loop(sdk: openai.AsyncOpenAI, n: int) -> None:
    """The Chat Completions floor: the same request as the client's, its body read unparsed."""
    for i in range(n):
        async with sdk.chat.completions.with_streaming_response.create(
            model=MODEL,
            messages=[],
            stream=True,
            extra_headers={"Idempotency-Key": f"chat-raw-{i}"},
            extra_body={
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": QUESTION},
                ],
                "max_tokens": 512,
                "stream_options": {"include_usage": True},
            },
        ) as raw:
            async for _chunk in raw.iter_bytes():
                pass


async def cpu_ms_per_answer(loop: Callable[[int], Awaitable[None]], n: int) -> float:
    started = time.process_time()
    await loop(n)
    return (time.process_time() - started) * 1000 / n


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=300, help="answers per block")
    parser.add_argument("--blocks", type=int, default=5, help="blocks of each loop")
    parser.add_argument("--chunk-size", type=int, default=16, help="characters per delta")
    parser.add_argument(
        "--against",
        metavar="REV",
        action="append",
        default=[],
        help="also time the clients of git REV (repeatable)",
    )
    args = parser.parse_args()

    async with FakeLLMServer() as server:
        server.reply_text = REPLY
        server.chunk_size = args.chunk_size
        # OpenAI's newest shape, every detail present (the only one the old client accepted).
        server.usage_details, server.usage_shape = True, "2026"

        def build(cls: type[Any]) -> Any:
            return cls(api_key=API_KEY, base_url=server.base_url, timeout=30.0)

        clients = {
            "OpenAIResponsesClient.stream": build(OpenAIResponsesClient),
            "OpenAIChatClient.stream": build(OpenAIChatClient),
        }
        for revision in args.against:
            clients[f"OpenAIResponsesClient.stream @{revision}"] = build(
                client_at(revision, "openai_responses", "OpenAIResponsesClient")
            )
            clients[f"OpenAIChatClient.stream @{revision}"] = build(
                client_at(revision, "openai_chat", "OpenAIChatClient")
            )
        sdk = openai.AsyncOpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0)
        loops: dict[str, Callable[[int], Awaitable[None]]] = {
            "sdk responses.create(stream=True)": lambda n: sdk_loop(sdk, n),
            "sdk chat.completions.create(stream=True)": lambda n: chat_sdk_loop(sdk, n),
            "raw body, unparsed (floor)": lambda n: body_loop(sdk, n),
            "raw chat body, unparsed (floor)": lambda n: chat_body_loop(sdk, n),
        }
        for name, client in clients.items():
            loops[name] = lambda n, c=client: client_loop(c, n)  # type: ignore[misc]
        try:
            for loop in loops.values():  # warm up: imports, connection pool, pydantic schemas
                await loop(20)
            results: dict[str, list[float]] = {name: [] for name in loops}
            for _ in range(args.blocks):
                for name, loop in loops.items():
                    results[name].append(await cpu_ms_per_answer(loop, args.answers))
        finally:
            for client in clients.values():
                await client.aclose()
            await sdk.close()

    deltas = -(-len(REPLY) // args.chunk_size)
    print(
        f"{args.blocks} blocks x {args.answers} answers, {len(REPLY)} characters in {deltas} "
        f"deltas; CPU ms per answer (server in-process), median [min-max] of blocks"
    )
    print(f"  {'':48} {'CPU ms':>6}  {'[min-max]':15} {'chunks per CPU s':>16}")
    for name, values in results.items():
        median = statistics.median(values)
        spread = f"[{min(values):.3f}-{max(values):.3f}]"
        # Chunks of a Chat Completions answer: the deltas plus the role, finish and usage ones.
        print(f"  {name:48} {median:6.3f}  {spread:15} {(deltas + 3) * 1000 / median:16,.0f}")
    for ours, base in (
        ("OpenAIResponsesClient.stream", "sdk responses.create(stream=True)"),
        ("OpenAIChatClient.stream", "sdk chat.completions.create(stream=True)"),
    ):
        ratio = statistics.median(results[ours]) / statistics.median(results[base])
        print(f"  {ours} / bare SDK: {ratio:.2f}x")
        for revision in args.against:
            then = statistics.median(results[f"{ours} @{revision}"])
            print(f"  {ours} now / @{revision}: {statistics.median(results[ours]) / then:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
