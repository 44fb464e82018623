"""Additions to rows every transaction shares, made as the transaction's last statements.

Every settled call adds to the day's all-tenants rollup row of its assistant and model. Updated
where the settlement happens, that row is held from there to the commit, and on PostgreSQL a
group-commit batch goes on to lock the next member's tenant rows while holding it. Two batches
(of two processes) then deadlock: one holds tenant 5 and waits for the shared row, the other
holds the shared row and waits for tenant 5. Taken last, the shared row is held by a
transaction that waits for nothing else but its commit, so it closes no such circle; and the
additions of a batch's members to the same row become one statement.

:func:`add_last` records an addition in the session; it is applied, summed per row and in the
order of the rows' keys (two transactions take their shared rows in one order), just before the
outermost transaction commits. A savepoint that rolls back drops the additions made inside it,
as it undoes that member's other writes. Only sessions of :class:`LastWritesSession` defer;
on any other session :func:`add_last` executes at once.

A commit issued while a savepoint is still open (``session.commit()`` inside
``begin_nested()``) is not supported: the additions would be dropped. The project's
transactions are context managers, which close savepoints first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

#: ``session.info`` keys: the additions not yet applied, and where each open savepoint began.
_PENDING = "switchboard.last_writes"
_MARKS = "switchboard.last_writes.marks"


@dataclass(frozen=True, slots=True)
class _Addition:
    statement: Executable
    #: Which row: additions with the same statement and key are summed into one execution.
    #: Rows are written in the order of their keys, so a key starts with the table's name.
    key: tuple[Any, ...]
    params: Mapping[str, Any]
    #: The parameters that add up; the others are the same for every addition to the row.
    summed: tuple[str, ...]


class LastWritesSession(Session):
    """A session whose :func:`add_last` additions run just before its outermost commit."""


async def add_last(
    session: AsyncSession,
    statement: Executable,
    params: Mapping[str, Any],
    *,
    key: tuple[Any, ...],
    summed: tuple[str, ...],
) -> None:
    """Execute ``statement`` (an upsert adding ``summed``) with ``params`` at the commit of the
    session's transaction, with those of the other additions to the row ``key`` summed in; at
    once on a session that does not defer (not a :class:`LastWritesSession`).

    ``key`` names the row: the table's name, then the values of its key columns. Every
    transaction writes its rows in the order of their keys, so two of them never take two shared
    rows in opposite orders (keys of one table must compare: same columns, no ``None``)."""
    sync = session.sync_session
    if not isinstance(sync, LastWritesSession):
        await session.execute(statement, params)
        return
    pending: list[_Addition] = sync.info.setdefault(_PENDING, [])
    pending.append(_Addition(statement, key, params, summed))


def _apply(session: Session) -> None:
    pending: list[_Addition] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    rows: dict[tuple[tuple[Any, ...], int], tuple[Executable, dict[str, Any]]] = {}
    statements: dict[int, int] = {}
    for addition in pending:
        # Rows are told apart by key and statement; the statement's number only breaks ties.
        number = statements.setdefault(id(addition.statement), len(statements))
        row = rows.get((addition.key, number))
        if row is None:
            rows[(addition.key, number)] = (addition.statement, dict(addition.params))
            continue
        params = row[1]
        for name in addition.summed:
            params[name] += addition.params[name]
    for key_and_number in sorted(rows):
        statement, params = rows[key_and_number]
        session.execute(statement, params)


@event.listens_for(LastWritesSession, "before_commit")
def _before_commit(session: Session) -> None:
    # Also dispatched when a savepoint is released: only the outermost commit applies.
    if not session.in_nested_transaction():
        _apply(session)


@event.listens_for(LastWritesSession, "after_transaction_create")
def _savepoint_begun(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        pending = session.info.get(_PENDING)
        if pending:
            session.info.setdefault(_MARKS, {})[transaction] = len(pending)


@event.listens_for(LastWritesSession, "after_soft_rollback")
def _rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.nested:
        # The additions made since the savepoint began go with its other writes.
        mark = session.info.get(_MARKS, {}).pop(previous_transaction, 0)
        pending = session.info.get(_PENDING)
        if pending:
            del pending[mark:]
    elif previous_transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_MARKS, None)


@event.listens_for(LastWritesSession, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    # A savepoint's mark stays until the outermost transaction ends: this event comes before
    # ``after_soft_rollback``, which still needs it.
    if transaction.parent is None and not transaction.nested:
        # Whatever the outcome, nothing carries over into the session's next transaction.
        session.info.pop(_PENDING, None)
        session.info.pop(_MARKS, None)
