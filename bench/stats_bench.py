"""``/stats`` at scale: seeds 10,000 tenants and 1,000,000 usage events, then times every
variant through the real command registry (as the shell runs them) and prints p50/p95.

    .venv/bin/python bench/stats_bench.py [--tenants 10000] [--events 1000000] [--runs 20]
                                          [--database-url URL]

Events are spread over the last 120 days across three assistants and three models, with 3 %
failed calls; the rollups are filled from the same events, as the metering would have done.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select

from admin_commands.registry import Caller
from bot.app import App, build_app, prepare_database
from bot.settings import load_settings
from storage.models import (
    Assistant,
    AssistantTenantMonth,
    Tenant,
    UsageDaily,
    UsageDailyGlobal,
    UsageEvent,
    UsageMonthlyTenant,
)

SHELL = Caller(channel="shell", user_id="bench", role="super_admin")
MODELS = (("openai", "gpt-4o-mini"), ("openai", "gpt-4.1-mini"), ("anthropic", "claude-haiku-4-5"))
VARIANTS = (
    ["stats"],
    ["stats", "7d"],
    ["stats", "90d"],
    ["stats", "{month}"],
    ["stats", "tenants"],
    ["stats", "tenants", "90d"],
    ["stats", "tenant", "t00042"],
    ["stats", "models"],
    ["stats", "assistants"],
    ["stats", "assistants", "90d"],
    ["stats", "top"],
    ["stats", "top", "90d"],
)
BATCH = 20_000


async def seed(app: App, tenants: int, events: int, today: date) -> None:
    rng = random.Random(7)
    now = datetime.now(UTC)
    async with app.deps.sessions.begin() as session:
        assistants = [a.id for a in (await session.execute(select(Assistant))).scalars()][:3]
        await session.execute(
            insert(Tenant),
            [
                {
                    "slug": f"t{n:05d}",
                    "name": f"Tenant {n}",
                    "status": ("active", "trial", "suspended")[n % 3],
                    "plan": "prepaid",
                    "billing_currency": "EUR",
                    "vat_rate_ppm": 200_000,
                    "token_balance": 0,
                    "tokens_reserved": 0,
                    "library_seq": n % 50,
                    "created_at": now,
                    "last_activity_at": now - timedelta(days=n % 30),
                }
                for n in range(tenants)
            ],
        )
        tenant_ids = [t for (t,) in (await session.execute(select(Tenant.id))).all()]

    daily: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0] * len(SUMS))
    overall: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0] * len(SUMS))
    monthly: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0] * len(SUMS))
    last_use: dict[tuple[date, int, int], date] = {}
    rows: list[dict[str, Any]] = []
    for n in range(events):
        tenant = tenant_ids[n % len(tenant_ids)]
        assistant = assistants[rng.randrange(len(assistants))]
        provider, model = MODELS[rng.randrange(len(MODELS))]
        day = today - timedelta(days=rng.randrange(120))
        failed = rng.random() < 0.03
        tokens_in, tokens_out = (0, 0) if failed else (rng.randint(50, 3000), rng.randint(20, 800))
        cost = (tokens_in * 150 + tokens_out * 600) // 1000 * (0 if failed else 1)
        latency = rng.randint(200, 4000)
        created = datetime.combine(day, datetime.min.time(), UTC) + timedelta(seconds=n % 86_400)
        rows.append(
            {
                "idempotency_key": f"bench:{n}",
                "tenant_id": tenant,
                "assistant_id": assistant,
                "provider": provider,
                "model": model,
                "kind": "chat",
                "status": "failed" if failed else "settled",
                "reserved_tokens": tokens_in + 1024,
                "input_tokens": tokens_in,
                "cached_input_tokens": 0,
                "output_tokens": tokens_out,
                "reasoning_tokens": 0,
                "charged_tokens": tokens_in + tokens_out,
                "cost_micros": cost,
                "cost_currency": "USD",
                "priced": True,
                "latency_ms": latency,
                "created_at": created,
                "overdraft_tokens": 0,
            }
        )
        sums = (int(not failed), int(failed), tokens_in, 0, tokens_out, 0, tokens_in + tokens_out)
        for table, key in (
            (daily, (day, tenant, assistant, provider, model)),
            (overall, (day, assistant, provider, model)),
            (monthly, (day.replace(day=1), tenant)),
        ):
            acc = table[key]
            for i, value in enumerate((*sums, cost, latency)):
                acc[i] += value
        used = (day.replace(day=1), assistant, tenant)
        last_use[used] = max(last_use.get(used, day), day)
        if len(rows) == BATCH:
            await _insert(app, UsageEvent, rows)
            rows = []
    if rows:
        await _insert(app, UsageEvent, rows)
    await _insert_sums(
        app, UsageDaily, daily, ("day", "tenant_id", "assistant_id", "provider", "model")
    )
    await _insert_sums(app, UsageDailyGlobal, overall, ("day", "assistant_id", "provider", "model"))
    await _insert_sums(app, UsageMonthlyTenant, monthly, ("month", "tenant_id"))
    uses = [
        {"month": m, "assistant_id": a, "tenant_id": t, "last_day": d}
        for (m, a, t), d in last_use.items()
    ]
    for start in range(0, len(uses), BATCH):
        await _insert(app, AssistantTenantMonth, uses[start : start + BATCH])


SUMS = (
    "calls",
    "failed",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "charged_tokens",
    "cost_micros",
    "latency_ms_sum",
)


async def _insert_sums(
    app: App, table: type, sums: dict[tuple[Any, ...], list[int]], keys: tuple[str, ...]
) -> None:
    # Accumulators hold the sums in SUMS order (see seed()).
    rows = [
        {
            **dict(zip(keys, key, strict=True)),
            "cost_currency": "USD",
            **dict(zip(SUMS, values[: len(SUMS)], strict=True)),
        }
        for key, values in sums.items()
    ]
    for start in range(0, len(rows), BATCH):
        await _insert(app, table, rows[start : start + BATCH])


async def _insert(app: App, table: type, rows: list[dict[str, Any]]) -> None:
    async with app.deps.sessions.begin() as session:
        await session.execute(insert(table), rows)


async def measure(app: App, runs: int, today: date) -> list[tuple[str, float, float]]:
    results: list[tuple[str, float, float]] = []
    month = f"{today.replace(day=1) - timedelta(days=1):%Y-%m}"
    for variant in VARIANTS:
        words = [w.format(month=month) for w in variant]
        await app.registry.dispatch(words, SHELL, app.deps)  # warm caches
        timings: list[float] = []
        for _ in range(runs):
            started = time.perf_counter()
            await app.registry.dispatch(words, SHELL, app.deps)
            timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        p95 = timings[max(0, round(0.95 * len(timings)) - 1)]
        results.append((" ".join(words), statistics.median(timings), p95))
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'stats.db'}"
        settings = load_settings(
            {
                "DATABASE_URL": url,
                "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
                "DEFAULT_PROVIDER": "openai",
                "DEFAULT_MODEL": "gpt-4o-mini",
                "MEDIA_DIR": str(Path(tmp) / "media"),
            }
        )
        app = build_app(settings)
        try:
            await prepare_database(app)
            today = app.deps.clock().date()
            started = time.perf_counter()
            await seed(app, args.tenants, args.events, today)
            print(
                f"seeded {args.tenants:,} tenants and {args.events:,} usage events "
                f"in {time.perf_counter() - started:.0f} s ({url.split(':')[0]})"
            )
            print(f"\n{'variant':<28} {'p50 ms':>8} {'p95 ms':>8}")
            for name, p50, p95 in await measure(app, args.runs, today):
                print(f"{name:<28} {p50:>8.1f} {p95:>8.1f}")
        finally:
            await app.aclose()


if __name__ == "__main__":
    asyncio.run(main())
