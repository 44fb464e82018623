"""What one SQLite statement costs through aiosqlite and through the inline driver
(``storage/sqlite_inline.py``), side by side: CPU and wall time per statement, for a one-row
``SELECT`` by key and for a write transaction of one ``UPDATE``, through ``AsyncSession`` as the
service runs them. Blocks of the two engines alternate so machine noise hits both alike.

    .venv/bin/python bench/sqlite_driver_bench.py [--statements 2000] [--blocks 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from storage.db import create_engine, create_quick_engine

SELECT = text("SELECT id, who FROM log WHERE id = :id")
UPDATE = text("UPDATE log SET who = :who WHERE id = 1")


async def _select(engine: AsyncEngine, n: int) -> None:
    sessions = async_sessionmaker(engine)
    async with sessions() as session:
        for _ in range(n):
            (await session.execute(SELECT, {"id": 1})).one()


async def _write(engine: AsyncEngine, n: int) -> None:
    sessions = async_sessionmaker(engine)
    for i in range(n):
        async with sessions.begin() as session:
            await session.execute(UPDATE, {"who": f"w{i}"})


async def _timed(work: Callable[[], Awaitable[None]], n: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    await work()
    return (time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statements", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        threaded = create_engine(url)
        inline = create_quick_engine(url)
        assert inline is not None
        async with threaded.begin() as conn:
            await conn.execute(text("CREATE TABLE log (id INTEGER PRIMARY KEY, who TEXT)"))
            await conn.execute(text("INSERT INTO log (who) VALUES ('first')"))
        engines = {"aiosqlite": threaded, "inline": inline}
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        n = args.statements
        for block in range(args.blocks + 1):  # the first block warms up and is not counted
            for name, engine in engines.items():
                for kind, run in (("select", _select), ("write", _write)):
                    timing = await _timed(lambda e=engine, r=run: r(e, n), n)
                    if block:
                        results.setdefault((name, kind), []).append(timing)
        await inline.dispose()
        await threaded.dispose()
    print(f"median of {args.blocks} alternating blocks of {n} statements, per statement:")
    print(f"{'':24}{'CPU µs':>10}{'wall µs':>10}")
    for kind in ("select", "write"):
        medians = {}
        for name in engines:
            cpu = statistics.median(t[0] for t in results[(name, kind)])
            wall = statistics.median(t[1] for t in results[(name, kind)])
            medians[name] = cpu
            print(f"{kind + ', ' + name:24}{cpu:10.1f}{wall:10.1f}")
        print(f"{kind + ', ratio':24}{medians['inline'] / medians['aiosqlite']:9.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
