"""The invoicing jobs of ``switchboard run``: last month's invoices from the 1st of a month, and
the hourly sweep of sent invoices past due to ``overdue``.

Each runs once per period however many processes tick: the one whose claim row is inserted does
it (see :class:`storage.repositories.jobs.JobClaims`). Generation is idempotent per tenant and
month as well, so a run taken over after a crash finishes what the first one started.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from billing.invoicing.monthly import MonthlyInvoicing, last_month
from billing.invoicing.service import InvoiceService
from core.clock import Clock
from core.period import Period, month_bounds
from storage.repositories.jobs import JobClaims

log = logging.getLogger(__name__)

GENERATE = "invoice.generate"
OVERDUE = "invoice.overdue"
#: A claim older than this and not finished is taken over (its process died).
STALE_AFTER = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class TickResult:
    generated: int | None = None
    overdue: list[str] | None = None


class InvoiceJobs:
    def __init__(
        self,
        claims: JobClaims,
        monthly: MonthlyInvoicing,
        invoices: InvoiceService,
        *,
        clock: Clock,
    ) -> None:
        self._claims = claims
        self._monthly = monthly
        self._invoices = invoices
        self._clock = clock

    async def tick(self) -> TickResult:
        """Run whichever job is due and not yet claimed for its period."""
        now = self._clock()
        generated: int | None = None
        year, month = last_month(now)
        label = f"{year:04d}-{month:02d}"
        if await self._claims.claim(GENERATE, label, now, stale_after=STALE_AFTER):
            start, end = month_bounds(year, month)
            made = await self._monthly.generate(Period(start, end, label), actor="scheduler")
            generated = sum(g.created for g in made)
            log.info("invoices for %s: %d new", label, generated)
            await self._claims.finish(GENERATE, label, self._clock())
        overdue: list[str] | None = None
        hour = f"{now:%Y-%m-%dT%H}"
        if await self._claims.claim(OVERDUE, hour, now, stale_after=STALE_AFTER):
            overdue = await self._invoices.sweep_overdue()
            if overdue:
                log.info("overdue: %s", ", ".join(overdue))
            await self._claims.finish(OVERDUE, hour, self._clock())
        return TickResult(generated, overdue)
