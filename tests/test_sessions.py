"""storage.db.Sessions: write transactions in arrival order (claims and reservations ahead,
within bounds), reads beside a writer."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
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


async def write(sessions: Sessions, who: str, *, ahead: bool = False) -> None:
    """One write transaction logging ``who``; it yields midway, as real ones do."""
    async with sessions.begin(ahead=ahead) as session:
        await session.execute(text("INSERT INTO log (who) VALUES (:who)"), {"who": who})
        await asyncio.sleep(0)


@asynccontextmanager
async def writer_held(sessions: Sessions) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Holds a write transaction open (logging ``first``) while the body queues writers into
    the yielded list; on leaving, lets go and waits for them all."""
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with sessions.begin() as session:
            await session.execute(text("INSERT INTO log (who) VALUES ('first')"))
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    queued: list[asyncio.Task[None]] = []
    try:
        yield queued
    finally:
        release.set()
        await asyncio.wait_for(asyncio.gather(holder, *queued, return_exceptions=True), 10)


async def queue(
    sessions: Sessions, queued: list[asyncio.Task[None]], who: str, *, ahead: bool = False
) -> asyncio.Task[None]:
    task = asyncio.create_task(write(sessions, who, ahead=ahead))
    queued.append(task)
    await asyncio.sleep(0.001)  # arrival order is creation order
    return task


async def logged(sessions: Sessions) -> Sequence[str]:
    async with sessions() as session:
        return (await session.execute(text("SELECT who FROM log ORDER BY id"))).scalars().all()


async def test_sqlite_writers_commit_in_arrival_order(sessions: Sessions) -> None:
    """Twenty writers queued behind an open write transaction get it in the order they asked,
    where SQLite's busy handler would let them retry in no particular order."""
    names = [f"w{n:02d}" for n in range(20)]
    async with writer_held(sessions) as queued:
        for name in names:
            await queue(sessions, queued, name)
    assert await logged(sessions) == ["first", *names]


async def test_sqlite_reads_do_not_wait_for_a_writer(sessions: Sessions) -> None:
    """A read session begins deferred: it reads the last committed state while a write
    transaction is open, instead of queueing behind it."""
    await write(sessions, "committed")
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
        task = asyncio.create_task(write(sessions, "after"))
        await asyncio.sleep(0.3)
        assert not task.done()
        other.execute("ROLLBACK")
        await asyncio.wait_for(task, timeout=10)
    finally:
        other.close()
    assert await logged(sessions) == ["after"]


async def test_ahead_transactions_pass_ordinary_ones_queued(sessions: Sessions) -> None:
    """Claims and reservations (``ahead``) go before ordinary writers already queued, which
    keep their arrival order among themselves."""
    async with writer_held(sessions) as queued:
        await queue(sessions, queued, "persist-1")
        await queue(sessions, queued, "claim-1", ahead=True)
        await queue(sessions, queued, "persist-2")
        await queue(sessions, queued, "claim-2", ahead=True)
    assert await logged(sessions) == ["first", "claim-1", "claim-2", "persist-1", "persist-2"]


async def test_an_ordinary_writer_is_passed_over_only_so_long(sessions: Sessions) -> None:
    """Once an ordinary writer has waited WRITER_PATIENCE_SECONDS, it goes before ``ahead``
    ones: a stream of claims cannot starve the persists."""
    async with writer_held(sessions) as queued:
        await queue(sessions, queued, "persist")
        await asyncio.sleep(WRITER_PATIENCE_SECONDS + 0.1)
        await queue(sessions, queued, "claim", ahead=True)
    assert await logged(sessions) == ["first", "persist", "claim"]


async def test_a_writer_that_gives_up_waiting_does_not_block_the_queue(
    sessions: Sessions,
) -> None:
    """A waiter cancelled in the queue is skipped; the next one gets the transaction."""
    async with writer_held(sessions) as queued:
        quitter = await queue(sessions, queued, "quitter", ahead=True)
        await queue(sessions, queued, "stayer", ahead=True)
        quitter.cancel()
    assert quitter.cancelled()
    assert await logged(sessions) == ["first", "stayer"]
