"""Engine and session factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and IMMEDIATE write transactions.

    ``BEGIN IMMEDIATE`` makes SQLite take the write lock at the start of a transaction, so two
    turns never deadlock upgrading read locks; with the busy timeout they simply queue.
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

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy drive transactions (pysqlite's implicit BEGIN is off).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is (for now) out of reach, not that the statement is
    wrong: worth retrying the same transaction later."""
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(
            exc, OperationalError | InterfaceError
        )
    return isinstance(exc, OSError | ConnectionError | TimeoutError)


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    seconds: float,
    what: str,
    first_delay: float = 0.1,
    max_delay: float = 2.0,
) -> T:
    """Run ``operation`` (one whole transaction) again while the database is unreachable, for up
    to ``seconds``; any other error, or the last transient one, is raised."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    delay = first_delay
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_transient(exc) or loop.time() + delay > deadline:
                raise
            log.warning("%s: database unreachable (%s), retrying", what, type(exc).__name__)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
