"""Transactions worth running again: the database was out of reach, or chose this transaction as
the one to roll back (a deadlock, a serialization failure). Telling those from errors in the
statement, and retrying through them (a whole transaction at a time)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)
T = TypeVar("T")


#: SQLSTATEs of a transaction PostgreSQL rolled back to let others through: ``deadlock_detected``
#: and ``serialization_failure``. Nothing of it was written; running it again is what the
#: PostgreSQL manual asks of applications.
_ROLLED_BACK_FOR_OTHERS = frozenset({"40P01", "40001"})


def is_conflict(exc: BaseException) -> bool:
    """Whether the database rolled this transaction back because of others (a deadlock): it
    certainly wrote nothing, and the same transaction can run again at once."""
    return isinstance(exc, DBAPIError) and (
        getattr(exc.orig, "sqlstate", None) in _ROLLED_BACK_FOR_OTHERS
    )


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is (for now) out of reach, or rolled the transaction
    back because of others, not that the statement is wrong: worth retrying the same
    transaction later."""
    if isinstance(exc, DBAPIError):
        return (
            bool(exc.connection_invalidated)
            or isinstance(exc, OperationalError | InterfaceError)
            or is_conflict(exc)
        )
    return isinstance(exc, OSError | ConnectionError | TimeoutError)


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    seconds: float,
    what: str,
    first_delay: float = 0.1,
    max_delay: float = 2.0,
    worth_retrying: Callable[[BaseException], bool] = is_transient,
) -> T:
    """Run ``operation`` (one whole transaction) again while it fails with an error
    ``worth_retrying`` (by default: transient), for up to ``seconds``; any other error, or the
    last retried one, is raised."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    delay = first_delay
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not worth_retrying(exc) or loop.time() + delay > deadline:
                raise
            reason = "rolled back for another transaction" if is_conflict(exc) else "unreachable"
            log.warning("%s: database %s (%s), retrying", what, reason, type(exc).__name__)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
