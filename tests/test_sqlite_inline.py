"""storage.sqlite_inline and the quick sessions on it: the turn's statements run on the event
loop's thread, wait for another process's lock without stopping the loop, and see what the
other engine committed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from storage.db import Sessions, create_engine, create_session_factory
from storage.sqlite_inline import inline_url


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[tuple[Path, Sessions]]:
    path = tmp_path / "inline.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE log (id INTEGER PRIMARY KEY, who TEXT)"))
    sessions = create_session_factory(engine)
    yield path, sessions
    await sessions.dispose()
    await engine.dispose()


def _thread_function(engine: AsyncEngine) -> None:
    """``thread_id()`` in SQL: the thread the statement runs on."""

    @event.listens_for(engine.sync_engine, "connect")
    def _add(dbapi_conn: Any, _record: Any) -> None:
        # aiosqlite's adapter and ours both pass create_function to the sqlite3 connection
        dbapi_conn.create_function("thread_id", 0, threading.get_ident)


async def test_quick_sessions_run_on_the_loop_thread_and_others_do_not(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'threads.db'}")
    sessions = create_session_factory(engine)
    try:
        _thread_function(engine)
        assert sessions._quick_engine is not None
        _thread_function(sessions._quick_engine)
        async with sessions.quick() as session:
            quick = (await session.execute(text("SELECT thread_id()"))).scalar_one()
        async with sessions() as session:
            ordinary = (await session.execute(text("SELECT thread_id()"))).scalar_one()
        async with sessions.begin(quick=True) as session:
            quick_write = (await session.execute(text("SELECT thread_id()"))).scalar_one()
    finally:
        await sessions.dispose()
        await engine.dispose()
    assert quick == quick_write == threading.get_ident()
    assert ordinary != threading.get_ident()  # aiosqlite's worker thread


async def test_each_engine_sees_the_others_commits(db: tuple[Path, Sessions]) -> None:
    _, sessions = db
    async with sessions.begin() as session:
        await session.execute(text("INSERT INTO log (who) VALUES ('ordinary')"))
    async with sessions.begin(quick=True) as session:
        await session.execute(text("INSERT INTO log (who) VALUES ('quick')"))
    async with sessions.quick() as session:
        via_quick = (await session.execute(text("SELECT who FROM log ORDER BY id"))).all()
    async with sessions() as session:
        via_ordinary = (await session.execute(text("SELECT who FROM log ORDER BY id"))).all()
    assert [r.who for r in via_quick] == [r.who for r in via_ordinary] == ["ordinary", "quick"]


async def test_a_quick_write_waits_for_another_process_without_stopping_the_loop(
    db: tuple[Path, Sessions],
) -> None:
    """Another process holds SQLite's write lock for 0.4 s: the quick write waits it out and
    then commits, and meanwhile the event loop keeps running other tasks (SQLite's own busy
    timeout would have slept on the loop's thread and frozen them)."""
    path, sessions = db
    other = sqlite3.connect(path, isolation_level=None)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def quick_write() -> None:
        async with sessions.begin(quick=True) as session:
            await session.execute(text("INSERT INTO log (who) VALUES ('after the lock')"))

    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO log (who) VALUES ('other process')")
        clock = asyncio.create_task(ticker())
        write = asyncio.create_task(quick_write())
        await asyncio.sleep(0.4)
        assert not write.done()
        waited_ticks = ticks
        other.execute("COMMIT")
        await asyncio.wait_for(write, timeout=10)
        clock.cancel()
    finally:
        other.close()
    assert waited_ticks >= 10, f"the loop ran only {waited_ticks} ticks in 0.4 s"
    async with sessions.quick() as session:
        rows = (await session.execute(text("SELECT who FROM log ORDER BY id"))).all()
    assert [r.who for r in rows] == ["other process", "after the lock"]


async def test_a_lock_held_past_the_patience_fails_the_write_and_changes_nothing(
    db: tuple[Path, Sessions],
) -> None:
    path, _ = db
    engine = create_async_engine(
        inline_url(create_engine(f"sqlite+aiosqlite:///{path}").url),
        connect_args={"busy_seconds": 0.2},
    )
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="database is locked"):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO log (who) VALUES ('too late')"))
        other.execute("ROLLBACK")
        async with engine.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM log"))).scalar_one()
    finally:
        other.close()
        await engine.dispose()
    assert count == 0


async def test_no_quick_engine_for_an_in_memory_database() -> None:
    """``:memory:`` cannot be opened twice: the quick sessions use the one engine."""
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    sessions = create_session_factory(engine)
    try:
        async with sessions.begin(quick=True) as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
            await session.execute(text("INSERT INTO t VALUES (1)"))
        async with sessions.quick() as session:
            assert (await session.execute(text("SELECT x FROM t"))).scalar_one() == 1
    finally:
        await sessions.dispose()
        await engine.dispose()
