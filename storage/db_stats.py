"""Counters of a process's database work: transactions, statements, writer hold and batches.

One :class:`DbStats` object per engine, built by the composition root and handed to
:class:`~storage.db.Sessions` (and attached to the engine's events); nothing here is global.
The service shows it on ``/metrics`` (``handlers.metrics``); ``bench/e2e_bench.py`` divides the
difference over a run by the turns it made.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(slots=True)
class DbStats:
    #: Transactions begun on the engine (read and write; savepoints excluded).
    transactions: int = 0
    #: SQL statements sent to the driver (``BEGIN`` and ``COMMIT`` excluded).
    statements: int = 0
    #: Write transactions (``Sessions.begin``), and how long they held the process's writer:
    #: from being granted the writer queue (SQLite) or from ``BEGIN`` (PostgreSQL) to its
    #: release after ``COMMIT`` or ``ROLLBACK``.
    writes: int = 0
    writer_hold_seconds: float = 0.0
    writer_hold_max_seconds: float = 0.0
    #: Time spent waiting for the writer queue (SQLite only).
    writer_wait_seconds: float = 0.0
    #: Group commit: how many batches held how many turns (size → batches).
    batch_sizes: Counter[int] = field(default_factory=Counter)

    def attach(self, engine: AsyncEngine) -> None:
        """Count ``engine``'s transactions and statements from its events."""
        sync = engine.sync_engine

        @event.listens_for(sync, "begin")
        def _begin(_conn: Any) -> None:
            self.transactions += 1

        @event.listens_for(sync, "before_cursor_execute")
        def _statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if not statement.startswith("BEGIN"):  # SQLite's, issued on the "begin" event
                self.statements += 1

    def held(self, seconds: float) -> None:
        self.writes += 1
        self.writer_hold_seconds += seconds
        self.writer_hold_max_seconds = max(self.writer_hold_max_seconds, seconds)

    def batch(self, size: int) -> None:
        self.batch_sizes[size] += 1
