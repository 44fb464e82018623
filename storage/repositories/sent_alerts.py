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
        """Record the keys not yet sent on ``day`` and return them (in the given order).

        The unique key makes a second recorder of the same alert fail with ``IntegrityError``
        at the flush, so whoever commits first is the one that sends.
        """
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return []
        query = select(SentAlert.kind, SentAlert.tenant, SentAlert.subject).where(
            SentAlert.day == day
        )
        sent = {(k, t, s) for k, t, s in (await self.session.execute(query)).all()}
        new = [key for key in wanted if key not in sent]
        self.session.add_all(
            SentAlert(day=day, kind=kind, tenant=tenant, subject=subject, sent_at=now)
            for kind, tenant, subject in new
        )
        await self.session.flush()
        return new
