"""Full-pipeline overhead against a zero-latency local LLM, beside a bare SDK loop.

Both loops stream the same request shape from the same fake OpenAI Responses server through the
same provider client; the pipeline adds dedup, identity, budget reservation, context loading,
pricing and the one-transaction persist. Blocks of the two loops alternate so machine noise hits
both alike.

    .venv/bin/python bench/pipeline_bench.py [--turns 300] [--blocks 5] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event

from assistants.types import ChatMessage, CompletionRequest, GenerationParams
from bot.app import App, build_app, prepare_database
from bot.settings import load_settings
from tests.conftest import admin, bind_console, console_message
from tests.fakes.llm_server import FakeLLMServer
from tests.sinks import RecordingSink


async def bare_loop(app: App, n: int) -> list[float]:
    client = app.deps.providers["openai"]
    timings: list[float] = []
    for i in range(n):
        request = CompletionRequest(
            system_prompt="You are a helpful assistant.",
            messages=[ChatMessage("user", f"bench question {i}")],
            params=GenerationParams(model="gpt-4o-mini", max_output_tokens=256),
            idempotency_key=f"bare-{i}-{time.monotonic_ns()}",
        )
        started = time.perf_counter()
        async for _event in client.stream(request):
            pass
        timings.append(time.perf_counter() - started)
    return timings


async def pipeline_loop(app: App, n: int, offset: int) -> list[float]:
    timings: list[float] = []
    for i in range(n):
        # A fresh user each time keeps the context (and so the request) the same size as bare.
        message = console_message(
            f"bench question {i}", user=f"user-{offset + i}", update_key=f"bench-{offset + i}"
        )
        started = time.perf_counter()
        ctx = await app.pipeline.handle(message, RecordingSink())
        timings.append(time.perf_counter() - started)
        assert ctx.outcome == "answered", ctx.outcome
    return timings


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300, help="turns per loop in total")
    parser.add_argument("--blocks", type=int, default=5, help="alternating blocks")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    llm = FakeLLMServer()
    llm.reply_text = "A short answer of about a dozen words for the benchmark run."
    llm.chunk_size = 8
    await llm.start()
    workdir = Path(tempfile.mkdtemp(prefix="sb-bench-"))
    url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    app = build_app(
        load_settings(
            {
                "DATABASE_URL": url,
                "OPENAI_BASE_URL": llm.base_url,
                "DEFAULT_PROVIDER": "openai",
                "DEFAULT_MODEL": "gpt-4o-mini",
                "RATE_LIMIT_PER_MINUTE": "0",
                "MEDIA_DIR": str(workdir / "media"),
            }
        )
    )
    await prepare_database(app)
    await admin(app, "tenant", "create", "acme", "--name", "Acme")
    await admin(app, "tokens", "grant", "acme", "1000000000")
    await bind_console(app)

    await bare_loop(app, 20)  # warm up connections and imports
    await pipeline_loop(app, 20, offset=10_000_000)

    counts = {"statements": 0, "transactions": 0}

    def _statement(*_args: object) -> None:
        counts["statements"] += 1

    def _transaction(*_args: object) -> None:
        counts["transactions"] += 1

    event.listen(app.engine.sync_engine, "before_cursor_execute", _statement)
    event.listen(app.engine.sync_engine, "begin", _transaction)
    await pipeline_loop(app, 10, offset=20_000_000)
    per_turn = {k: v / 10 for k, v in counts.items()}
    event.remove(app.engine.sync_engine, "before_cursor_execute", _statement)
    event.remove(app.engine.sync_engine, "begin", _transaction)

    per_block = max(1, args.turns // args.blocks)
    bare: list[float] = []
    full: list[float] = []
    bare_wall = full_wall = 0.0
    for block in range(args.blocks):
        t0 = time.perf_counter()
        bare += await bare_loop(app, per_block)
        t1 = time.perf_counter()
        full += await pipeline_loop(app, per_block, offset=block * per_block)
        t2 = time.perf_counter()
        bare_wall += t1 - t0
        full_wall += t2 - t1

    await app.aclose()
    await llm.stop()

    bare_tps = len(bare) / bare_wall
    full_tps = len(full) / full_wall
    print(f"database: {url.split(':', 1)[0]}   turns per loop: {len(full)}")
    print(
        f"bare SDK loop : {bare_tps:7.1f} calls/s   p50 {pct(bare, 0.5) * 1e3:6.2f} ms"
        f"   p99 {pct(bare, 0.99) * 1e3:6.2f} ms"
    )
    print(
        f"full pipeline : {full_tps:7.1f} turns/s   p50 {pct(full, 0.5) * 1e3:6.2f} ms"
        f"   p99 {pct(full, 0.99) * 1e3:6.2f} ms"
    )
    print(
        f"overhead/turn : p50 {(pct(full, 0.5) - pct(bare, 0.5)) * 1e3:6.2f} ms"
        f"   p99 {(pct(full, 0.99) - pct(bare, 0.99)) * 1e3:6.2f} ms"
        f"   mean {(statistics.mean(full) - statistics.mean(bare)) * 1e3:6.2f} ms"
    )
    print(f"ratio         : pipeline throughput = {full_tps / bare_tps:.2f} × bare loop")
    print(
        f"per turn      : {per_turn['transactions']:.1f} transactions, "
        f"{per_turn['statements']:.1f} SQL statements (BEGIN and COMMIT included)"
    )


if __name__ == "__main__":
    asyncio.run(main())
