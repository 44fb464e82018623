"""Group commit: the write transactions waiting at one moment share one database transaction.

A turn's persist (messages, library item, settled usage, ledger debit, claim done) is a few
short statements; on its own, each pays for a transaction (the writer queue, ``BEGIN
IMMEDIATE``, ``COMMIT`` and its sync) and, on SQLite, holds the single writer for all of it.
Here the first caller opens a *batch*: a writer task waits for the process's writer and opens
one transaction; everyone who asks while the batch is waiting for the writer joins it, up to
``MAX_BATCH``. Members run
one after another on the batch's session, each in its own ``SAVEPOINT``, so an error in one
member rolls back that member only and is raised to it alone. When the last member is through,
the writer task commits once, and only then does each member's ``async with`` return: whoever
waits on it (the turn, before its final send) knows its writes are durable. If the commit
fails, every member gets the error, as it would have from its own transaction (and retries
transient ones the same way); so does every member when one of them finds the database out of
reach, since the batch's connection is then gone for all. The same on PostgreSQL: one commit,
fewer round trips.

A member must not open another transaction that writes (grouped or not) inside its body: it
would wait for the batch it is part of.

:meth:`GroupCommit.run` is the faster way in: the member hands over its work as a function of
the session, and the writer task runs all of them back to back, each in its savepoint, before
the ``async with`` members. While a batch holds SQLite's single writer, that leaves no hand-off
between tasks (each one a turn of a busy event loop) between one member's statements and the
next's: the writer is held for the work alone. And when no batch is gathering and the writer is
free (``free``, given where the writer can tell), ``run`` commits the work at once in the
caller's own task, a batch of one: under load, every task switch on the way to a turn's first
words costs a pass of a busy event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from storage.db_stats import DbStats
from storage.transient import is_transient

T = TypeVar("T")
_Work = Callable[[AsyncSession], Awaitable[Any]]

#: At most this many members per batch: a batch holds the (SQLite) writer while its members
#: run one after another, and reservations wait behind it. At 50 busy chats, unbounded batches
#: (~25 turns) put the first visible text at 0.75 s, 8 at 0.25 s, 3 at 0.09 s, for the same
#: throughput (bench/e2e_bench.py).
MAX_BATCH = 4


class _Batch:
    __slots__ = (
        "closed",
        "committed",
        "done",
        "lost",
        "members",
        "ready",
        "size",
        "turn",
        "works",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        #: No member may join any more (the batch has the writer, or failed).
        self.closed = False
        #: Members that joined and are not through yet.
        self.members = 0
        #: Members that joined in all (for the statistics).
        self.size = 0
        #: One member's body at a time on the shared session.
        self.turn = asyncio.Lock()
        self.ready: asyncio.Future[AsyncSession] = loop.create_future()
        self.done = asyncio.Event()
        self.committed: asyncio.Future[None] = loop.create_future()
        #: The transient error a member hit: the connection is gone, for every member.
        self.lost: BaseException | None = None
        #: Work handed over with ``run``: the writer task runs it, before the other members.
        self.works: list[tuple[int, _Work, asyncio.Future[Any]]] = []


def _order(member: tuple[int, _Work, asyncio.Future[Any]]) -> int:
    return member[0]


class GroupCommit:
    """Batches the write transactions opened with :meth:`transaction` (see the module)."""

    def __init__(
        self,
        begin: Callable[[], AbstractAsyncContextManager[AsyncSession]],
        stats: DbStats | None = None,
        *,
        max_size: int = MAX_BATCH,
        one_at_a_time: bool = False,
        free: Callable[[], bool] | None = None,
    ) -> None:
        self._begin = begin
        #: Whether a transaction would begin now without waiting for the writer.
        self._free = free
        self._max_size = max_size
        self._stats = stats
        self._batch: _Batch | None = None
        self._writers: set[asyncio.Task[None]] = set()
        #: With ``one_at_a_time``, the batch before, until it has committed or failed.
        self._one_at_a_time = one_at_a_time
        self._previous: asyncio.Task[None] | None = None

    def _joining(self) -> _Batch:
        """The batch still gathering, or a new one with its writer task."""
        batch = self._batch
        if batch is None or batch.closed or batch.size >= self._max_size:
            batch = self._batch = _Batch(asyncio.get_running_loop())
            previous = self._previous if self._one_at_a_time else None
            writer = asyncio.create_task(self._write(batch, previous), name="group-commit")
            self._previous = writer
            self._writers.add(writer)  # referenced until done
            writer.add_done_callback(self._writers.discard)
        return batch

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]], *, order: int = 0) -> T:
        """``await work(session)`` in the next batch, in its own savepoint, run by the batch's
        writer task; its result once the batch has committed. An error of ``work`` rolls back
        its savepoint and is raised here at once; the commit's error is raised to every member.

        A batch runs its members by ascending ``order`` (those of equal order as they came).
        Give the id of the shared row the work locks (a turn's tenant): batches running at the
        same time, in this process or another, then take those rows in one order and cannot
        deadlock, as two batches holding one tenant each and waiting for the other's would.
        """
        gathering = self._batch is not None and not self._batch.closed
        if not gathering and self._free is not None and self._free():
            async with self._begin() as session:
                result = await work(session)
            if self._stats is not None:
                self._stats.batch(1)
            return result
        batch = self._joining()
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        batch.works.append((order, work, done))
        batch.size += 1
        result = await asyncio.shield(done)
        # The batch commits even if this caller is cancelled.
        await asyncio.shield(batch.committed)
        return result

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        batch = self._joining()
        batch.members += 1
        batch.size += 1
        try:
            session = await asyncio.shield(batch.ready)
            async with batch.turn:
                if batch.lost is not None:
                    raise batch.lost  # an earlier member found the connection gone
                try:
                    async with session.begin_nested():
                        yield session
                except Exception as exc:
                    if is_transient(exc):
                        batch.lost = exc  # the writer task raises it instead of committing
                    raise
        finally:
            batch.members -= 1
            if batch.members == 0:
                batch.closed = True
                batch.done.set()
        # Raises the commit's error, if any; the batch commits even if this caller is cancelled.
        await asyncio.shield(batch.committed)

    async def _write(self, batch: _Batch, previous: asyncio.Task[None] | None) -> None:
        try:
            if previous is not None:
                # One batch at a time: on PostgreSQL, where nothing else makes a writer wait,
                # the next batch gathers while this one commits. (On SQLite the writer queue
                # does that already, and lets several reservation batches queue ahead of a
                # persist batch: one at a time there put the first text p50 at 1.2 s.)
                await asyncio.wait([previous])
            async with self._begin() as session:
                # Those who came while the batch waited for the writer make up the batch; later
                # ones form the next, so claims and reservations (which go ahead of it in the
                # writer queue) are not held up behind an ever longer batch.
                batch.closed = True
                for _, work, result in sorted(batch.works, key=_order):
                    try:
                        async with session.begin_nested():
                            value = await work(session)
                    except Exception as exc:
                        if is_transient(exc):
                            # The connection is gone: nobody after this member can run, nobody
                            # before it can commit. All of them hear that the database is out
                            # of reach (and retry), not that the session is unusable.
                            raise
                        result.set_exception(exc)  # that member's alone: its savepoint is undone
                    else:
                        result.set_result(value)
                batch.ready.set_result(session)
                if batch.members:
                    await batch.done.wait()
                if batch.lost is not None:
                    raise batch.lost
        except BaseException as exc:
            batch.closed = True
            for _, _, result in batch.works:
                if not result.done():
                    result.set_exception(exc)
            for future in (batch.ready, batch.committed):
                if not future.done():
                    future.set_exception(exc)
            # Members waiting on the futures have it; nobody else needs to see it.
            batch.committed.exception()
            if not batch.ready.cancelled():
                batch.ready.exception()
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        batch.committed.set_result(None)
        if self._stats is not None:
            self._stats.batch(batch.size)
