"""Alerts for operators: recorded here, listed and sent to admins by the alerting commands."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Alert


class AlertRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, kind: str, detail: str, *, now: datetime, tenant_id: int | None = None
    ) -> Alert:
        alert = Alert(kind=kind, tenant_id=tenant_id, detail=detail, created_at=now)
        self.session.add(alert)
        await self.session.flush()
        return alert

    async def recent(self, *, kind: str | None = None, limit: int = 50) -> list[Alert]:
        query = select(Alert).order_by(Alert.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(Alert.kind == kind)
        return list((await self.session.execute(query)).scalars())
