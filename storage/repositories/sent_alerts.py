"""Which alerts went out to the admins, per day: each one is pushed once a day at most."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import SentAlert

#: ``(kind, tenant slug or "", subject or "")``: what makes two alerts the same alert.
AlertKey = tuple[str, str, str]


class SentAlertRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record_new(
        self, day: date, keys: Iterable[AlertKey], now: datetime
    ) -> list[AlertKey]:
        """Record the keys not yet sent on ``day`` and return them (in the given order)."""
        return await self.record_new_on([(day, key) for key in keys], now)

    async def record_new_on(
        self, pushes: Iterable[tuple[date, AlertKey]], now: datetime
    ) -> list[AlertKey]:
        """Record each ``(day, key)`` not yet recorded and return their keys (in order).

        The unique key makes a second recorder of the same alert fail with ``IntegrityError``
        at the flush, so whoever commits first is the one that sends.
        """
        wanted = list(dict.fromkeys(pushes))
        if not wanted:
            return []
        days = {day for day, _ in wanted}
        query = select(SentAlert.day, SentAlert.kind, SentAlert.tenant, SentAlert.subject).where(
            SentAlert.day.in_(days)
        )
        sent = {(d, (k, t, s)) for d, k, t, s in (await self.session.execute(query)).all()}
        new = [push for push in wanted if push not in sent]
        self.session.add_all(
            SentAlert(day=day, kind=kind, tenant=tenant, subject=subject, sent_at=now)
            for day, (kind, tenant, subject) in new
        )
        await self.session.flush()
        return [key for _, key in new]
