"""storage.db.Sessions: write transactions in arrival order, reads beside a writer."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import Sessions, create_engine


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Sessions]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE log (id INTEGER PRIMARY KEY, who TEXT)"))
    yield Sessions(engine)
    await engine.dispose()


async def test_sqlite_writers_commit_in_arrival_order(sessions: Sessions) -> None:
    """Twenty writers queued behind an open write transaction get it in the order they asked,
    where SQLite's busy handler would let them retry in no particular order."""
    holding = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with sessions.begin() as session:
            await session.execute(text("INSERT INTO log (who) VALUES ('first')"))
            holding.set()
            await release.wait()

    async def writer(name: str) -> None:
        async with sessions.begin() as session:
            await session.execute(text("INSERT INTO log (who) VALUES (:who)"), {"who": name})
            await asyncio.sleep(0)  # a transaction that yields midway still keeps its place

    holder = asyncio.create_task(first())
    await holding.wait()
    names = [f"w{n:02d}" for n in range(20)]
    waiters = []
    for name in names:
        waiters.append(asyncio.create_task(writer(name)))
        await asyncio.sleep(0.001)  # arrival order is creation order
    release.set()
    await asyncio.gather(holder, *waiters)

    async with sessions() as session:
        rows = (await session.execute(text("SELECT who FROM log ORDER BY id"))).scalars().all()
    assert rows == ["first", *names]


async def test_sqlite_reads_do_not_wait_for_a_writer(sessions: Sessions) -> None:
    """A read session begins deferred: it reads the last committed state while a write
    transaction is open, instead of queueing behind it."""
    async with sessions.begin() as session:
        await session.execute(text("INSERT INTO log (who) VALUES ('committed')"))
    async with sessions.begin() as writer:
        await writer.execute(text("INSERT INTO log (who) VALUES ('pending')"))
        async with sessions() as reader:
            seen = await asyncio.wait_for(
                reader.execute(text("SELECT who FROM log ORDER BY id")), timeout=5
            )
            assert seen.scalars().all() == ["committed"]


async def test_sqlite_write_waits_for_another_process_and_then_proceeds(
    sessions: Sessions, tmp_path: Path
) -> None:
    """Against another process's lock, a write still waits on SQLite's busy timeout (not the
    in-process queue) and goes ahead once the lock is gone."""
    other = sqlite3.connect(tmp_path / "sessions.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")

        async def write() -> None:
            async with sessions.begin() as session:
                await session.execute(text("INSERT INTO log (who) VALUES ('after')"))

        task = asyncio.create_task(write())
        await asyncio.sleep(0.3)
        assert not task.done()
        other.execute("ROLLBACK")
        await asyncio.wait_for(task, timeout=10)
    finally:
        other.close()
    async with sessions() as session:
        rows = (await session.execute(text("SELECT who FROM log"))).scalars().all()
    assert rows == ["after"]
