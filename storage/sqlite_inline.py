"""A SQLite driver that runs each statement on the event loop's own thread.

aiosqlite gives every connection a thread and hands each call to it: a statement through
SQLAlchemy's adapter is three to four such hand-offs (cursor, execute, fetch, close), each a
pair of thread switches. On this project's machine a one-row ``SELECT`` through
``AsyncSession`` costs ~560 µs of CPU that way and ~66 µs here, a one-statement write
transaction ~1,360 µs and ~290 µs (``bench/sqlite_driver_bench.py``). For the short, indexed
statements of a turn the hand-off, not SQLite, was the cost: about half of the service's CPU
per turn.

This driver is the standard library's ``sqlite3`` presented to SQLAlchemy as an async dialect:
statements run where they are called, inside SQLAlchemy's greenlet, with no thread. What
would otherwise block the loop is waiting for another process's write lock, so connections
are opened with no busy timeout, and a statement SQLite refuses as busy is retried after an
``asyncio.sleep`` (the loop keeps serving) until ``busy_seconds`` have passed; a statement
that failed as busy had no effect, so running it again is safe. Reads never wait for a writer
in WAL mode.

Use it only for statements known to be short (:class:`storage.db.Sessions` routes the turn's
own transactions here); anything that may read a lot stays on aiosqlite, whose thread keeps the
loop free while SQLite works.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL
from sqlalchemy.util import await_only

T = TypeVar("T")

#: The URL's driver name (``sqlite+switchboard_inline://...``), registered by :func:`register`.
DRIVER = "switchboard_inline"
#: The first pause after a busy refusal; it doubles up to ``MAX_PAUSE``.
FIRST_PAUSE = 0.001
MAX_PAUSE = 0.05


def register() -> None:
    """Make ``sqlite+switchboard_inline`` URLs resolve to :class:`InlineSQLiteDialect`."""
    registry.register(f"sqlite.{DRIVER}", __name__, "InlineSQLiteDialect")


def inline_url(url: URL) -> URL:
    """``url`` (a SQLite URL with any driver) for this driver."""
    register()
    return url.set(drivername=f"sqlite+{DRIVER}")


async def _nothing() -> None:
    return None


def _patiently(busy_seconds: float, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)``, run again after a pause on the event loop while SQLite says busy."""
    # SQLAlchemy's AsyncConnection.execute insists that an async driver awaited something (a
    # guard against sync drivers); a finished coroutine costs a greenlet switch, no loop turn.
    await_only(_nothing())
    deadline: float | None = None
    pause = FIRST_PAUSE
    while True:
        try:
            return call(*args)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + busy_seconds
            if now + pause > deadline:
                raise
        await_only(asyncio.sleep(pause))
        pause = min(pause * 2, MAX_PAUSE)


class InlineCursor:
    """A ``sqlite3.Cursor`` whose statements wait out a busy database on the event loop."""

    __slots__ = ("_busy_seconds", "_cursor")

    def __init__(self, cursor: sqlite3.Cursor, busy_seconds: float) -> None:
        self._cursor = cursor
        self._busy_seconds = busy_seconds

    def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        _patiently(self._busy_seconds, self._cursor.execute, sql, parameters)
        return self

    def executemany(self, sql: str, parameters: Any) -> InlineCursor:
        _patiently(self._busy_seconds, self._cursor.executemany, sql, parameters)
        return self

    async def _async_soft_close(self) -> None:
        """Called by SQLAlchemy's asyncio layer after each ``execute`` on an async driver's
        cursor, for drivers that must fetch on the loop; sqlite3's rows stay readable."""

    def __getattr__(self, name: str) -> Any:
        # description, rowcount, lastrowid, fetch*, close, arraysize: sqlite3's own
        return getattr(self._cursor, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in InlineCursor.__slots__:
            object.__setattr__(self, name, value)
        else:
            setattr(self._cursor, name, value)


class InlineConnection:
    """A ``sqlite3.Connection`` handing out :class:`InlineCursor` s."""

    __slots__ = ("_busy_seconds", "_connection")

    def __init__(self, connection: sqlite3.Connection, busy_seconds: float) -> None:
        object.__setattr__(self, "_connection", connection)
        object.__setattr__(self, "_busy_seconds", busy_seconds)

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._connection.cursor(), self._busy_seconds)

    def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        return self.cursor().execute(sql, parameters)

    def commit(self) -> None:
        _patiently(self._busy_seconds, self._connection.commit)

    def __getattr__(self, name: str) -> Any:
        # rollback, close, create_function, isolation_level, ...: sqlite3's own
        return getattr(self._connection, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._connection, name, value)


class InlineDBAPI:
    """The ``sqlite3`` module, with ``connect`` returning :class:`InlineConnection` s."""

    def __init__(self) -> None:
        for name in dir(sqlite3):
            if not name.startswith("_") and name != "connect":
                setattr(self, name, getattr(sqlite3, name))

    def connect(self, *args: Any, busy_seconds: float = 30.0, **kwargs: Any) -> InlineConnection:
        # No busy timeout inside SQLite: it would sleep on the loop's thread (see module doc).
        # The pool may close a connection from the garbage collector's thread.
        kwargs.update(timeout=0, check_same_thread=False)
        return InlineConnection(sqlite3.connect(*args, **kwargs), busy_seconds)


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    """SQLAlchemy's pysqlite dialect, marked async so that an ``AsyncEngine`` accepts it."""

    driver = DRIVER
    is_async = True
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> Any:
        return InlineDBAPI()

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool
