"""CPU cost of one streamed answer through ``OpenAIResponsesClient``, beside the bare SDK stream.

Both loops stream the same answer (312 characters in 20 deltas by default) from the fake OpenAI
Responses server over real local HTTP. The server runs in this process, so its CPU is in both
numbers; the bare loop (``responses.create(stream=True)``, the SDK's typed event stream) is the
baseline (what the client cost while it used that stream), and reading the raw body without
parsing it is the floor (the server and the transport). Blocks of the two
loops alternate so machine noise hits both alike; the median block is reported.

    .venv/bin/python bench/provider_bench.py [--answers 300] [--blocks 5] [--chunk-size 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai

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


async def client_loop(client: OpenAIResponsesClient, n: int) -> None:
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


async def cpu_ms_per_answer(loop: Callable[[int], Awaitable[None]], n: int) -> float:
    started = time.process_time()
    await loop(n)
    return (time.process_time() - started) * 1000 / n


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=300, help="answers per block")
    parser.add_argument("--blocks", type=int, default=5, help="blocks of each loop")
    parser.add_argument("--chunk-size", type=int, default=16, help="characters per delta")
    args = parser.parse_args()

    async with FakeLLMServer() as server:
        server.reply_text = REPLY
        server.chunk_size = args.chunk_size
        client = OpenAIResponsesClient(api_key=API_KEY, base_url=server.base_url, timeout=30.0)
        sdk = openai.AsyncOpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0)
        loops: dict[str, Callable[[int], Awaitable[None]]] = {
            "sdk responses.create(stream=True)": lambda n: sdk_loop(sdk, n),
            "OpenAIResponsesClient.stream": lambda n: client_loop(client, n),
            "raw body, unparsed (floor)": lambda n: body_loop(sdk, n),
        }
        try:
            for loop in loops.values():  # warm up: imports, connection pool, pydantic schemas
                await loop(20)
            results: dict[str, list[float]] = {name: [] for name in loops}
            for _ in range(args.blocks):
                for name, loop in loops.items():
                    results[name].append(await cpu_ms_per_answer(loop, args.answers))
        finally:
            await client.aclose()
            await sdk.close()

    deltas = -(-len(REPLY) // args.chunk_size)
    print(
        f"{args.blocks} blocks x {args.answers} answers, {len(REPLY)} characters in {deltas} "
        f"deltas; CPU ms per answer (server in-process), median [min-max] of blocks"
    )
    for name, values in results.items():
        print(
            f"  {name:36} {statistics.median(values):6.3f}  [{min(values):.3f}-{max(values):.3f}]"
        )
    base = statistics.median(results["sdk responses.create(stream=True)"])
    ours = statistics.median(results["OpenAIResponsesClient.stream"])
    print(f"  client minus bare SDK: {ours - base:+.3f} ms per answer")


if __name__ == "__main__":
    asyncio.run(main())
