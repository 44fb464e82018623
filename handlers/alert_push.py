"""The daily alert push of ``switchboard run``: new alerts to every platform admin's chat.

Once a day, at the first check at or after ``ALERTS_HOUR`` (UTC), the current alerts
(``billing.alerts``) that were not yet sent that day go to every admin in a private chat: a
Telegram admin's chat is their user id, a Slack admin (``slack:T/U``) gets a direct message from
the app. However many processes run, one pushes: the ``alerts.daily`` lease is taken first, and
each alert is recorded in ``sent_alerts`` (unique per day, kind, tenant and subject) before it is
sent. Recording first means a crash mid-push may lose that day's message but never doubles it;
an alert whose condition lasts comes back the next day. A process that starts after the hour
pushes what is new since (a restart does not resend what went out).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.exc import IntegrityError

from admin_commands.alerts import alert_lines
from billing.alerts import Alert, collect
from core.clock import Clock
from handlers.recovery import Notifier
from storage.db import Sessions
from storage.repositories.admins import AdminRepository
from storage.repositories.leases import LeaseRepository
from storage.repositories.sent_alerts import SentAlertRepository

log = logging.getLogger(__name__)

LEASE = "alerts.daily"
#: Longer than a push takes; a holder that died frees the lease after this.
LEASE_TTL = timedelta(minutes=10)
#: Characters per message: under Telegram's 4,096 with room for its own formatting.
MESSAGE_CHARS = 3_500
#: Alerts listed in one push; the rest are counted and left to ``/alerts``.
MAX_LISTED = 60


def admin_address(external_id: str) -> dict[str, str]:
    """Where ``Channel.notify`` writes to reach an admin privately.

    Telegram: a user's private chat id is their user id. Slack: ``T/U`` is the chat key, and
    the Slack channel posts to its part after "/", a user id, which opens the app's DM.
    """
    return {"chat_key": external_id, "thread_key": ""}


def compose(day: date, alerts: Sequence[Alert]) -> list[str]:
    """The push as messages of at most :data:`MESSAGE_CHARS`, split between lines."""
    lines = [f"Switchboard alerts, {day:%Y-%m-%d} ({len(alerts):,} new):"]
    lines += alert_lines(alerts[:MAX_LISTED])
    if len(alerts) > MAX_LISTED:
        lines.append(f"… and {len(alerts) - MAX_LISTED:,} more: see /alerts")
    messages: list[str] = []
    current = ""
    for line in lines:
        line = line[:MESSAGE_CHARS]
        if current and len(current) + 1 + len(line) > MESSAGE_CHARS:
            messages.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    messages.append(current)
    return messages


class DailyAlerts:
    def __init__(
        self,
        sessions: Sessions,
        clock: Clock,
        *,
        hour: int,
        holder: str,
        lease_ttl: timedelta = LEASE_TTL,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._hour = hour
        self._holder = holder
        self._lease_ttl = lease_ttl
        #: The last day this process saw pushed (by itself or another process).
        self._done: date | None = None

    async def push_due(self, notifiers: Mapping[str, Notifier]) -> list[Alert] | None:
        """Push the day's new alerts if it is time; the alerts this process sent, or None when
        it is not time yet, the day is done, or another process is pushing right now."""
        now = self._clock().astimezone(UTC)
        if now.hour < self._hour or self._done == now.date():
            return None
        async with self._sessions.begin() as session:
            if not await LeaseRepository(session).acquire(
                LEASE, self._holder, now, self._lease_ttl
            ):
                return None  # another process is pushing: look again at the next check
        try:
            sent = await self._push(now, notifiers)
        finally:
            async with self._sessions.begin() as session:
                await LeaseRepository(session).release(LEASE, self._holder, self._clock())
        self._done = now.date()
        return sent

    async def _push(self, now: datetime, notifiers: Mapping[str, Notifier]) -> list[Alert]:
        async with self._sessions() as session:
            found = await collect(session, now)
            admins = await AdminRepository(session).list()
        try:
            async with self._sessions.begin() as session:
                recorded = await SentAlertRepository(session).record_new_on(
                    [(a.push_day(now.date()), a.key) for a in found], now
                )
        except IntegrityError:
            # Only when a lease ran out under a slow push: the other process sends them.
            log.warning("alerts of %s were being pushed by another process", now.date())
            return []
        new = set(recorded)
        fresh = [a for a in found if a.key in new]
        if not fresh:
            return []
        messages = compose(now.date(), fresh)
        reached = 0
        for admin in admins:
            notifier = notifiers.get(admin.channel)
            if notifier is None:
                continue  # a channel this process does not serve (the console)
            try:
                for text in messages:
                    await notifier.notify(admin_address(admin.external_id), text)
            except Exception:
                log.warning(
                    "could not send alerts to %s:%s",
                    admin.channel,
                    admin.external_id,
                    exc_info=True,
                )
            else:
                reached += 1
        log.info("pushed %d alerts to %d admins", len(fresh), reached)
        return fresh
