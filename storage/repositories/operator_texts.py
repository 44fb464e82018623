"""Texts the operator sets with ``/config set`` (``paysupport``, ``terms``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import OperatorText


class OperatorTextRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key: str) -> str | None:
        row = await self.session.get(OperatorText, key)
        return row.value if row else None

    async def set(self, key: str, value: str, *, now: datetime, actor: str) -> str | None:
        """Store ``value`` under ``key``; the value it replaces (None if there was none)."""
        row = await self.session.get(OperatorText, key, with_for_update=True)
        if row is None:
            self.session.add(OperatorText(key=key, value=value, updated_at=now, updated_by=actor))
            await self.session.flush()
            return None
        before = row.value
        row.value, row.updated_at, row.updated_by = value, now, actor
        return before
