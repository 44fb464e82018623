"""A full garbage collection over the service's start-up heap, before and after it is frozen.

Builds what ``switchboard run`` builds (the app, the Telegram and Slack channels, the provider
clients with their SDK modules, the price data), then times full collections (``gc.collect()``,
which stops the whole process, event loop included) as they run in a service without
``bot.heap.StartUpHeap``, and again after its ``settle()`` froze the start-up heap.

    .venv/bin/python bench/heap_bench.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistants.pricing import warm_up_prices
from bot.app import build_app
from bot.channels import build_channels
from bot.heap import StartUpHeap
from bot.settings import load_settings


def full_collections(repeat: int) -> tuple[float, int]:
    """Median milliseconds of a full collection, and the objects it walks."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), len(gc.get_objects())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    heap = StartUpHeap()
    heap.hold()
    workdir = Path(tempfile.mkdtemp(prefix="sb-heap-"))
    app = build_app(
        load_settings(
            {
                "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'heap.db'}",
                "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
                "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
                "DEFAULT_PROVIDER": "openai",
                "DEFAULT_MODEL": "gpt-4o-mini",
                "TELEGRAM_BOT_TOKEN": "123:bench",
                "SLACK_BOT_TOKEN": "xoxb-bench",
                "SLACK_SIGNING_SECRET": "bench",
                "MEDIA_DIR": str(workdir / "media"),
            }
        )
    )
    channels = build_channels(app.settings, app.deps, app.pipeline, app.registry)
    for provider in app.deps.providers.values():
        provider.warm_up()
    warm_up_prices()

    before_ms, before_objects = full_collections(args.repeat)
    heap.settle()
    after_ms, after_objects = full_collections(args.repeat)
    print(f"channels: {', '.join(c.name for c in channels)}; medians of {args.repeat}")
    print(f"  objects frozen by settle(): {gc.get_freeze_count():,}")
    for label, ms, objects in (
        ("start-up heap walked", before_ms, before_objects),
        ("start-up heap frozen", after_ms, after_objects),
    ):
        print(f"  full collection, {label}  {ms:8.2f} ms  {objects:>9,} objects walked")
    print("  (in a running service, the objects the turns in flight hold are walked as well)")


if __name__ == "__main__":
    main()
