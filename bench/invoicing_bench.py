"""The monthly invoice run at scale: 10,000 postpaid tenants with 100 usage events each (1M
events) in October 2026, then ``invoice generate --all --period 2026-10`` through the real
command registry, timed; then the same again (every invoice already there).

    .venv/bin/python bench/invoicing_bench.py [--tenants 10000] [--events-per-tenant 100]
                                              [--database-url URL]

Only the daily rollups are seeded (from the generated events, summed as the metering would):
invoicing reads them, never the raw events.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select

from admin_commands.registry import Caller
from bot.app import App, build_app, prepare_database
from bot.settings import load_settings
from storage.models import Invoice, InvoiceLine, Tenant, UsageDaily

SHELL = Caller(channel="shell", user_id="bench", role="super_admin")
MODELS = (("openai", "gpt-4o-mini"), ("openai", "gpt-4.1-mini"), ("anthropic", "claude-haiku-4-5"))
NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
BATCH = 20_000


async def seed(app: App, tenants: int, per_tenant: int) -> None:
    rng = random.Random(11)
    async with app.deps.sessions.begin() as session:
        await session.execute(
            insert(Tenant),
            [
                {
                    "slug": f"t{n:05d}", "name": f"Tenant {n}", "status": "active",
                    "plan": "postpaid", "billing_currency": "EUR", "vat_rate_ppm": 200_000,
                    "token_balance": 0, "tokens_reserved": 0, "library_seq": 0,
                    "created_at": NOW,
                }
                for n in range(tenants)
            ],
        )  # fmt: skip
        ids = list((await session.execute(select(Tenant.id).order_by(Tenant.id))).scalars())
    rows: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for tenant_id in ids:
        for _ in range(per_tenant):
            provider, model = MODELS[rng.randrange(len(MODELS))]
            day = date(2026, 10, rng.randint(1, 31))
            tokens_in, tokens_out = rng.randint(50, 4000), rng.randint(20, 1500)
            row = rows[(day, tenant_id, provider, model)]
            row[0] += 1
            row[1] += tokens_in
            row[2] += tokens_out
            row[3] += rng.randint(10, 20_000)  # cost in USD micros
    values = [
        {
            "day": day, "tenant_id": tenant_id, "assistant_id": 0, "provider": provider,
            "model": model, "cost_currency": "USD", "calls": calls, "failed": 0,
            "input_tokens": tin, "cached_input_tokens": 0, "output_tokens": tout,
            "reasoning_tokens": 0, "charged_tokens": tin + tout, "latency_ms_sum": calls * 800,
            "cost_micros": cost,
        }
        for (day, tenant_id, provider, model), (calls, tin, tout, cost) in rows.items()
    ]  # fmt: skip
    for start in range(0, len(values), BATCH):
        async with app.deps.sessions.begin() as session:
            await session.execute(insert(UsageDaily), values[start : start + BATCH])
    print(f"seeded {tenants:,} tenants, {tenants * per_tenant:,} events, {len(values):,} rollups")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--events-per-tenant", type=int, default=100)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        settings = load_settings({"DATABASE_URL": url, "MEDIA_DIR": tmp})
        app = build_app(settings, clock=lambda: NOW)
        try:
            await prepare_database(app)
            await seed(app, args.tenants, args.events_per_tenant)
            words = ["invoice", "generate", "--all", "--period", "2026-10"]
            for label in ("generate", "again (idempotent)"):
                started = time.perf_counter()
                result = await app.registry.dispatch(words, SHELL, app.deps)
                elapsed = time.perf_counter() - started
                print(f"{label}: {len(result.data):,} invoices in {elapsed:.1f} s")
            async with app.deps.sessions() as session:
                invoices = await session.scalar(select(func.count()).select_from(Invoice))
                lines = await session.scalar(select(func.count()).select_from(InvoiceLine))
                last = await session.scalar(
                    select(Invoice.number).order_by(Invoice.id.desc()).limit(1)
                )
            print(f"{invoices:,} invoices, {lines:,} lines, last number {last}")
        finally:
            await app.aclose()


if __name__ == "__main__":
    asyncio.run(main())
