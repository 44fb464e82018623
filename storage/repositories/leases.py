"""Leases: a named job that one process at a time may run, whatever the number of processes.

A lease is one row (``name``, ``holder``, ``expires_at``). It is taken by inserting the row if
there is none, else by one conditional ``UPDATE`` that only matches when the lease is free
(expired) or already ours. Both statements decide atomically in the database: PostgreSQL's
unique key and row lock (the ``WHERE`` is re-checked on the locked row), SQLite's single
writer. So two processes racing for a lease can never both get it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Lease


class LeaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def acquire(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take (or extend) lease ``name`` for ``ttl``; False while another holder has it.

        Commit right after: the lease protects work done in later transactions.
        """
        expires_at = now + ttl
        dialect = self.session.get_bind().dialect.name
        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        created = await self.session.execute(
            insert(Lease)
            .values(name=name, holder=holder, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        if created.rowcount:  # type: ignore[attr-defined]
            return True
        taken = await self.session.execute(
            update(Lease)
            .where(Lease.name == name, or_(Lease.expires_at <= now, Lease.holder == holder))
            .values(holder=holder, expires_at=expires_at)
        )
        return bool(taken.rowcount)  # type: ignore[attr-defined]

    async def release(self, name: str, holder: str, now: datetime) -> bool:
        """Give the lease up early (only if still ours), so the next taker need not wait."""
        released = await self.session.execute(
            update(Lease).where(Lease.name == name, Lease.holder == holder).values(expires_at=now)
        )
        return bool(released.rowcount)  # type: ignore[attr-defined]
