"""Engine and session factory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.db_stats import DbStats
from storage.group_commit import GroupCommit
from storage.last_writes import LastWritesSession
from storage.sqlite_inline import inline_url
from storage.writer_queue import WriterQueue

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: How long an ordinary write transaction may be passed over by ``ahead`` ones (see Sessions).
#: By then the user reading the streamed answer waits only for its final message; at 50 busy
#: chats this bound took the first visible text from 1.5 s to 0.1-0.2 s and kept p99 within
#: twice the median (bench/e2e_bench.py).
WRITER_PATIENCE_SECONDS = 2.0
#: Execution option marking the connections of write transactions (see :class:`Sessions`).
_WRITE = "switchboard_write"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and IMMEDIATE write transactions.

    ``BEGIN IMMEDIATE`` makes SQLite take the write lock at the start of a write transaction, so
    two writers never deadlock upgrading read locks; with the busy timeout, writers of other
    processes queue. Read transactions (sessions opened with ``sessions()``, see
    :class:`Sessions`) begin deferred and, in WAL mode, never wait for a writer.
    """
    memory = is_sqlite(url) and make_url(url).database in (None, "", ":memory:")
    if not memory:
        # Turns hold a connection only for short transactions, never while a model streams, so
        # a modest pool serves many concurrent turns; under a burst, waiting beats failing.
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_timeout", 120)
    if not is_sqlite(url):
        kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(url, **kwargs)
    engine = create_async_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
    )
    _prepare_sqlite(engine, wal=not memory, busy_timeout_ms=SQLITE_BUSY_TIMEOUT_MS)
    return engine


def create_quick_engine(url: str) -> AsyncEngine | None:
    """For a SQLite file, a second engine on it for the turn's short statements, run on the
    event loop's thread (:mod:`storage.sqlite_inline`); ``None`` elsewhere (PostgreSQL's
    driver has no thread to skip; an in-memory database cannot be opened twice)."""
    if not is_sqlite(url) or make_url(url).database in (None, "", ":memory:"):
        return None
    engine = create_async_engine(
        inline_url(make_url(url)),
        connect_args={"busy_seconds": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=10,
        max_overflow=20,
        pool_timeout=120,
    )
    # SQLite's own busy timeout stays 0: waiting happens on the loop (see sqlite_inline).
    _prepare_sqlite(engine, wal=True, busy_timeout_ms=0)
    return engine


def _prepare_sqlite(engine: AsyncEngine, *, wal: bool, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy drive transactions (pysqlite's implicit BEGIN is off).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Sessions:
    """Opens sessions on one database: ``sessions()`` to read, ``sessions.begin()`` to write.

    ``async with sessions() as session`` is for reading: it never commits, and on SQLite its
    transaction begins deferred, so it neither waits for nor blocks a writer. ``async with
    sessions.begin() as session`` is one write transaction, committed on a clean exit.

    SQLite has a single writer. Left to its busy handler, waiting writers retry with back-off in
    no particular order, and under load some turns keep losing (a tail many times the median).
    So within a process, write transactions queue in a :class:`WriterQueue`: in arrival order,
    except that ``begin(ahead=True)`` (short transactions a user waits on before the answer
    starts: the update's claim, the reservation) goes before queued ordinary ones that have not
    yet waited ``WRITER_PATIENCE_SECONDS``. ``BEGIN IMMEDIATE`` and the busy timeout still order
    writers against other processes. Nothing may open a write transaction while holding one: it
    would wait for itself until ``SQLITE_BUSY_TIMEOUT_MS`` and fail, as it would on SQLite's lock.
    On PostgreSQL writers run concurrently (row locks order them) and ``ahead`` changes nothing.

    ``quick``, a second engine on the same SQLite file (:func:`create_quick_engine`), serves the
    turn's own transactions: ``sessions.quick()`` reads, ``begin(quick=True)`` and ``grouped()``
    writes. Its statements run on the event loop's thread, so those transactions must be a few
    short, indexed statements; without it (PostgreSQL, in-memory SQLite) they use ``engine``.
    Its writers queue in the same :class:`WriterQueue` as the others.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        stats: DbStats | None = None,
        *,
        quick: AsyncEngine | None = None,
    ) -> None:
        self.engine = engine
        self._quick_engine = quick
        #: What this process's transactions cost (``/metrics``); counted only when given.
        self.stats = stats
        self._read = async_sessionmaker(
            engine, expire_on_commit=False, sync_session_class=LastWritesSession
        )
        self._write = self._writer(engine)
        self._quick_read = (
            async_sessionmaker(quick, expire_on_commit=False, sync_session_class=LastWritesSession)
            if quick
            else self._read
        )
        self._quick_write = self._writer(quick) if quick else self._write
        sqlite = engine.dialect.name == "sqlite"
        self._queue = WriterQueue(WRITER_PATIENCE_SECONDS) if sqlite else None
        serial = self._queue is None  # see GroupCommit's ``one_at_a_time``
        # With the inline driver a free writer is taken without a pass through the event loop.
        free = self._writer_free if quick is not None else None
        self._group = GroupCommit(
            partial(self.begin, quick=True), stats, one_at_a_time=serial, free=free
        )
        self._group_ahead = GroupCommit(
            partial(self.begin, ahead=True, quick=True), stats, one_at_a_time=serial, free=free
        )

    def _writer_free(self) -> bool:
        return self._queue is not None and not self._queue.held

    @staticmethod
    def _writer(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
        if engine.dialect.name == "sqlite":
            engine = engine.execution_options(**{_WRITE: True})
        # Rows every transaction shares are written at its commit (storage.last_writes).
        return async_sessionmaker(
            engine, expire_on_commit=False, sync_session_class=LastWritesSession
        )

    def __call__(self) -> AsyncSession:
        return self._read()

    @property
    def engines(self) -> tuple[AsyncEngine, ...]:
        """Every engine these sessions use (``engine``, then the quick one if there is one)."""
        return (self.engine,) if self._quick_engine is None else (self.engine, self._quick_engine)

    def quick(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A read session for a few short, indexed statements (see the class doc)."""
        return self._closing(self._quick_read(), inline=self._quick_engine is not None)

    @staticmethod
    @asynccontextmanager
    async def _closing(session: AsyncSession, *, inline: bool) -> AsyncIterator[AsyncSession]:
        """``session``, closed on the way out. SQLAlchemy's own ``async with session`` closes
        it in a task of its own, so that a cancellation cannot interrupt the close halfway: a
        turn or two of the event loop, which under load adds up on a turn's way to its first
        words. On the inline driver the close never suspends, so it cannot be interrupted, and
        is awaited directly."""
        if not inline:
            async with session:
                yield session
            return
        try:
            yield session
        finally:
            await session.close()

    async def dispose(self) -> None:
        """Close the quick engine's connections (``engine`` belongs to whoever made it)."""
        if self._quick_engine is not None:
            await self._quick_engine.dispose()

    def grouped(self, *, ahead: bool = False) -> AbstractAsyncContextManager[AsyncSession]:
        """A write transaction committed together with the others asked for at the same moment,
        each in its own savepoint (:mod:`storage.group_commit`); it returns once committed.
        ``ahead`` batches go ahead of ordinary ones in the writer queue, as ``begin(ahead=True)``
        (reservations, and the claims they carry)."""
        return (self._group_ahead if ahead else self._group).transaction()

    async def run_grouped(
        self, work: Callable[[AsyncSession], Awaitable[T]], *, ahead: bool = False, order: int = 0
    ) -> T:
        """``await work(session)`` as a member of a group commit (see :meth:`grouped`), run by
        the batch's own task so that the members' statements follow one another without a
        pass through the event loop; its result once committed. ``order``: the id of the tenant
        whose rows the work locks (see :meth:`GroupCommit.run`)."""
        return await (self._group_ahead if ahead else self._group).run(work, order=order)

    @asynccontextmanager
    async def begin(
        self, *, ahead: bool = False, quick: bool = False
    ) -> AsyncIterator[AsyncSession]:
        queue = self._queue
        stats = self.stats
        write = self._quick_write if quick else self._write
        asked = time.perf_counter()
        if queue is not None:
            try:
                async with asyncio.timeout(SQLITE_BUSY_TIMEOUT_MS / 1000):
                    await queue.acquire(ahead=ahead)
            except TimeoutError:
                raise OperationalError(
                    "BEGIN IMMEDIATE", None, TimeoutError("waited too long for the writer queue")
                ) from None
        granted = time.perf_counter()
        # The session closes (and its connection goes back to the pool) in a task of its own
        # (SQLAlchemy shields it from cancellation): a turn or two of a busy event loop. The
        # writer is let go once the transaction has ended, not after that.
        async with self._closing(
            write(), inline=quick and self._quick_engine is not None
        ) as session:
            try:
                async with session.begin():
                    yield session
            finally:
                if queue is not None:
                    queue.release()
                if stats is not None:
                    if queue is not None:
                        stats.writer_wait_seconds += granted - asked
                    stats.held(time.perf_counter() - granted)


def create_session_factory(engine: AsyncEngine, stats: DbStats | None = None) -> Sessions:
    """Sessions on ``engine`` (and, on a SQLite file, a quick engine beside it: see
    :class:`Sessions`); with ``stats``, their transactions and statements are counted."""
    quick = create_quick_engine(engine.url.render_as_string(hide_password=False))
    if stats is not None:
        stats.attach(engine)
        if quick is not None:
            stats.attach(quick)
    return Sessions(engine, stats, quick=quick)
