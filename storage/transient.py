"""Outages of the database: telling them from errors in the statement, and retrying through
them (a whole transaction at a time)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)
T = TypeVar("T")


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
