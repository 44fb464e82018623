"""What one of the turn's writes costs through the ORM and as a statement built once, side by
side: a ledger entry inserted with ``session.add`` + ``flush`` and with ``storage.rows.insert_row``,
and the balance ``UPDATE`` as an ORM bulk update (which also evaluates its ``WHERE`` against the
session's loaded objects) and as the prebuilt Core statement. CPU per statement, through
``AsyncSession`` on the inline SQLite driver, in one transaction per block; blocks alternate so
machine noise hits both alike.

    .venv/bin/python bench/statement_bench.py [--statements 2000] [--blocks 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Table, insert, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from storage.db import create_quick_engine
from storage.models import Base, LedgerEntry, Tenant
from storage.rows import insert_row

_REFERENCES = count()


def _entry() -> LedgerEntry:
    return LedgerEntry(
        tenant_id=1,
        kind="usage",
        tokens=-1,
        balance_after=0,
        reference=f"bench-{next(_REFERENCES)}",
        created_at=datetime.now(UTC),
    )


async def orm_insert(session: AsyncSession) -> None:
    session.add(_entry())
    await session.flush()


async def core_insert(session: AsyncSession) -> None:
    await insert_row(session, _entry())


_ORM_UPDATE = (
    update(Tenant).where(Tenant.id == 1).values(tokens_reserved=Tenant.tokens_reserved + 1)
)
_TENANTS = cast(Table, Tenant.__table__)
_CORE_UPDATE = (
    update(_TENANTS)
    .where(_TENANTS.c.id == 1)
    .values(tokens_reserved=_TENANTS.c.tokens_reserved + 1)
)


async def orm_update(session: AsyncSession) -> None:
    await session.execute(_ORM_UPDATE)


async def core_update(session: AsyncSession) -> None:
    await session.execute(_CORE_UPDATE)


CASES: dict[str, tuple[Callable[[AsyncSession], Awaitable[None]], ...]] = {
    "insert": (orm_insert, core_insert),
    "update": (orm_update, core_update),
}


async def _timed(
    sessions: async_sessionmaker[AsyncSession],
    statement: Callable[[AsyncSession], Awaitable[None]],
    n: int,
) -> float:
    async with sessions.begin() as session:
        cpu = time.process_time()
        for _ in range(n):
            await statement(session)
        return (time.process_time() - cpu) / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statements", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        setup = create_async_engine(url)
        async with setup.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.execute(insert(Tenant).values(id=1, slug="bench", name="Bench"))
        await setup.dispose()
        engine = create_quick_engine(url)
        assert engine is not None
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        results: dict[str, list[float]] = {}
        for block in range(args.blocks + 1):  # the first block warms up and is not counted
            for kind, (orm, core) in CASES.items():
                for name, statement in ((f"{kind}, ORM", orm), (f"{kind}, prebuilt Core", core)):
                    cpu = await _timed(sessions, statement, args.statements)
                    if block:
                        results.setdefault(name, []).append(cpu)
        await engine.dispose()
    print(f"median of {args.blocks} alternating blocks of {args.statements} statements:")
    print(f"{'':24}{'CPU µs':>10}")
    for kind in CASES:
        orm_cpu = statistics.median(results[f"{kind}, ORM"])
        core_cpu = statistics.median(results[f"{kind}, prebuilt Core"])
        print(f"{kind + ', ORM':24}{orm_cpu:10.1f}")
        print(f"{kind + ', prebuilt Core':24}{core_cpu:10.1f}")
        print(f"{kind + ', ratio':24}{core_cpu / orm_cpu:9.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
