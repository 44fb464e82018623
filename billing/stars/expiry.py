"""Telegram Stars subscriptions that ran out: back to the prepaid plan.

Telegram renews a Stars subscription itself: each renewal arrives as a ``successful_payment``
whose ``subscription_expiration_date`` extends our row's ``current_period_end``
(:mod:`billing.stars.credit`). Nothing arrives when it stops, whether cancelled with
``/subscription cancel`` or not renewed (the subscriber's Stars ran out, or they cancelled it
in Telegram). So the service looks every hour: a Stars subscription whose paid period ended
more than :data:`GRACE` ago ends as a Stripe one does on ``customer.subscription.deleted``
(``billing.stripe.subscription_events``): the row is ``canceled``, the tenant is back on
``prepaid`` (unless another subscription of its runs), the change is audited
(``subscription.expire``, actor ``scheduler``) and the chat that subscribed is told, in its
reader's language, through the outbox. The tokens already granted stay; no ledger entry is
written and nothing is charged.

Once per hour however many processes run: the run is claimed through
:class:`~storage.repositories.jobs.JobClaims` (job ``stars.expiry``, the hour as its period).
Each subscription ends in its own transaction, conditionally on it not being ended already,
and its notice has a delivery key of its own (cause ``stars.expired``, the subscription's id):
a run taken over after a crash, or run twice, changes and says nothing twice. A renewal that
arrived in time moved the period's end forward, so that subscription is not due.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.notices import Notice, address_of, enqueue, reader_translator, still_the_tenants
from billing.stars.amounts import STARS_PROVIDER
from billing.stripe.subscription_events import FALLBACK_PLAN, ended_text
from core.clock import Clock
from core.i18n import Translators
from storage.db import Sessions
from storage.models import Subscription
from storage.repositories.admins import AuditRepository
from storage.repositories.jobs import JobClaims
from storage.repositories.payments import SubscriptionRepository
from storage.repositories.tenants import TenantRepository

log = logging.getLogger(__name__)

JOB = "stars.expiry"
#: The outbox cause of an ending's notice (its reference is the subscription's id).
CAUSE = "stars.expired"
#: How long past its period's end a subscription is still given: Telegram charges a renewal at
#: that moment, and its ``successful_payment`` may reach us a little later (or after a restart).
GRACE = timedelta(hours=1)
#: A claim older than this and not finished is taken over (its process died).
STALE_AFTER = timedelta(hours=1)


class StarsExpiry:
    def __init__(
        self,
        sessions: Sessions,
        claims: JobClaims,
        *,
        clock: Clock,
        translators: Translators | None = None,
        grace: timedelta = GRACE,
    ) -> None:
        self._sessions = sessions
        self._claims = claims
        self._clock = clock
        self._translators = translators
        self._grace = grace

    async def tick(self) -> list[int] | None:
        """The hour's sweep, if no process has claimed it yet: the outbox rows written (to
        deliver after commit), or None when it was not this process's to run."""
        now = self._clock()
        hour = f"{now:%Y-%m-%dT%H}"
        if not await self._claims.claim(JOB, hour, now, stale_after=STALE_AFTER):
            return None
        written = await self.sweep()
        await self._claims.finish(JOB, hour, self._clock())
        return written

    async def sweep(self) -> list[int]:
        """End every Stars subscription whose period ended more than the grace ago."""
        now = self._clock()
        async with self._sessions() as session:
            due = list(
                (
                    await session.execute(
                        select(Subscription.id).where(
                            Subscription.provider == STARS_PROVIDER,
                            Subscription.status != "canceled",
                            Subscription.current_period_end.is_not(None),
                            Subscription.current_period_end <= now - self._grace,
                        )
                    )
                ).scalars()
            )
        written: list[int] = []
        for subscription_id in due:
            async with self._sessions.begin() as session:
                written += await self._end(session, subscription_id, now)
        return written

    async def _end(self, session: AsyncSession, subscription_id: int, now: datetime) -> list[int]:
        status = await session.scalar(
            select(Subscription.status).where(Subscription.id == subscription_id)
        )
        # Conditional on the row: of two runs (or a renewal credited meanwhile), one decides.
        ended = await session.execute(
            update(Subscription)
            .where(
                Subscription.id == subscription_id,
                Subscription.status != "canceled",
                Subscription.current_period_end <= now - self._grace,
            )
            .values(status="canceled", canceled_at=now, updated_at=now)
        )
        if not ended.rowcount:  # type: ignore[attr-defined]
            return []
        subscription = await session.get(Subscription, subscription_id, populate_existing=True)
        assert subscription is not None
        tenant = await TenantRepository(session).by_id(subscription.tenant_id)
        other = await SubscriptionRepository(session).current(tenant.id)
        before = tenant.plan
        if tenant.plan == subscription.plan and other is None:
            tenant.plan = FALLBACK_PLAN
        end = subscription.current_period_end
        await AuditRepository(session).record(
            "scheduler",
            "subscription.expire",
            subscription.stripe_subscription_id,
            {"status": status, "plan": before},
            {
                "status": "canceled",
                "plan": tenant.plan,
                "period_end": end.isoformat() if end else None,
                "renewals_stopped": subscription.cancel_at_period_end,
            },
            tenant_id=tenant.id,
        )
        log.info(
            "Stars subscription %s of %s ended (period end %s): plan %s -> %s",
            subscription.stripe_subscription_id, tenant.slug, end, before, tenant.plan,
        )  # fmt: skip
        address = address_of(subscription.reply_to)
        if address is None or not await still_the_tenants(session, tenant.id, [address]):
            return []
        t = await reader_translator(session, self._translators, address, tenant_id=tenant.id)
        notice = Notice(address, ended_text(t, subscription), tenant_id=tenant.id)
        return await enqueue(
            session, [notice], cause_kind=CAUSE, cause_ref=str(subscription.id), now=now
        )
