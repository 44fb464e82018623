"""storage.db.Sessions: write transactions in arrival order (claims and reservations ahead,
within bounds), reads beside a writer."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import WRITER_PATIENCE_SECONDS, Sessions, create_engine


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


async def test_ahead_transactions_pass_ordinary_ones_queued(sessions: Sessions) -> None:
    """Claims and reservations (``ahead``) go before ordinary writers already queued, which
    keep their arrival order among themselves."""
    holding = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with sessions.begin() as session:
            await session.execute(text("INSERT INTO log (who) VALUES ('first')"))
            holding.set()
            await release.wait()

    async def writer(name: str, ahead: bool) -> None:
        async with sessions.begin(ahead=ahead) as session:
            await session.execute(text("INSERT INTO log (who) VALUES (:who)"), {"who": name})

    holder = asyncio.create_task(first())
    await holding.wait()
    order = [("persist-1", False), ("claim-1", True), ("persist-2", False), ("claim-2", True)]
    tasks = []
    for name, ahead in order:
        tasks.append(asyncio.create_task(writer(name, ahead)))
        await asyncio.sleep(0.001)
    release.set()
    await asyncio.gather(holder, *tasks)

    async with sessions() as session:
        rows = (await session.execute(text("SELECT who FROM log ORDER BY id"))).scalars().all()
    assert rows == ["first", "claim-1", "claim-2", "persist-1", "persist-2"]


async def test_an_ordinary_writer_is_passed_over_only_so_long(sessions: Sessions) -> None:
    """Once an ordinary writer has waited WRITER_PATIENCE_SECONDS, it goes before ``ahead``
    ones: a stream of claims cannot starve the persists."""
    holding = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with sessions.begin() as session:
            holding.set()
            await release.wait()
            await session.execute(text("INSERT INTO log (who) VALUES ('first')"))

    async def writer(name: str, ahead: bool) -> None:
        async with sessions.begin(ahead=ahead) as session:
            await session.execute(text("INSERT INTO log (who) VALUES (:who)"), {"who": name})

    holder = asyncio.create_task(first())
    await holding.wait()
    persist = asyncio.create_task(writer("persist", False))
    await asyncio.sleep(WRITER_PATIENCE_SECONDS + 0.1)
    claim = asyncio.create_task(writer("claim", True))
    await asyncio.sleep(0.001)
    release.set()
    await asyncio.gather(holder, persist, claim)

    async with sessions() as session:
        rows = (await session.execute(text("SELECT who FROM log ORDER BY id"))).scalars().all()
    assert rows == ["first", "persist", "claim"]


async def test_a_writer_that_gives_up_waiting_does_not_block_the_queue(
    sessions: Sessions,
) -> None:
    """A waiter cancelled in the queue is skipped; the next one gets the transaction."""
    holding = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with sessions.begin():
            holding.set()
            await release.wait()

    async def writer(name: str) -> None:
        async with sessions.begin(ahead=True) as session:
            await session.execute(text("INSERT INTO log (who) VALUES (:who)"), {"who": name})

    holder = asyncio.create_task(first())
    await holding.wait()
    quitter = asyncio.create_task(writer("quitter"))
    stayer = asyncio.create_task(writer("stayer"))
    await asyncio.sleep(0.01)
    quitter.cancel()
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, stayer), timeout=5)
    assert quitter.cancelled()

    async with sessions() as session:
        rows = (await session.execute(text("SELECT who FROM log"))).scalars().all()
    assert rows == ["stayer"]
