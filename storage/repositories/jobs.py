"""Claims on periodic jobs: one process runs a job for a period, however many are running."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from storage.db import Sessions
from storage.models import JobRun


class JobClaims:
    def __init__(self, sessions: Sessions, holder: str) -> None:
        self._sessions = sessions
        self.holder = holder

    async def claim(self, job: str, period: str, now: datetime, *, stale_after: timedelta) -> bool:
        """True when this process got ``job`` for ``period``: its INSERT won the unique key, or
        it took over a claim left unfinished for longer than ``stale_after`` (a crash)."""
        try:
            async with self._sessions.begin() as session:
                session.add(JobRun(job=job, period=period, holder=self.holder, started_at=now))
            return True
        except IntegrityError:
            pass
        async with self._sessions.begin() as session:
            run = (
                await session.execute(
                    select(JobRun).where(JobRun.job == job, JobRun.period == period)
                )
            ).scalar_one()
            if run.finished_at is not None or run.started_at > now - stale_after:
                return False
            # Conditional on the old holder: of two processes taking over, one wins.
            taken = await session.execute(
                update(JobRun)
                .where(
                    JobRun.id == run.id,
                    JobRun.holder == run.holder,
                    JobRun.finished_at.is_(None),
                )
                .values(holder=self.holder, started_at=now)
            )
            return bool(taken.rowcount)  # type: ignore[attr-defined]

    async def finish(self, job: str, period: str, now: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(JobRun)
                .where(JobRun.job == job, JobRun.period == period, JobRun.holder == self.holder)
                .values(finished_at=now)
            )
