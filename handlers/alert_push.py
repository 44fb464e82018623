"""The daily alert push of ``switchboard run``: new alerts to every platform admin's chat.

Once a day, at the first check at or after ``ALERTS_HOUR`` (UTC), the current alerts
(``billing.alerts``) that were not yet sent that day go to every admin in a private chat: a
Telegram admin's chat is their user id, a Slack admin (``slack:T/U``) gets a direct message from
the app. However many processes run, one pushes: the ``alerts.daily`` lease is taken first, and
each alert is recorded in ``sent_alerts`` (unique per day, kind, tenant and subject) in the
same transaction that writes the messages into the outbox, which delivers them (retried until
they go out, whichever process reaches the admin's channel). An alert whose condition lasts
comes back the next day. A process that starts after the hour pushes what is new since (a
restart does not resend what went out). Each admin reads it in their language, as ``/alerts``
answers them: their ``/language`` as a member of an organisation, else that organisation's,
else ``DEFAULT_LANGUAGE`` (``billing.notices.reader_language``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from admin_commands.alerts import alert_lines
from billing.alerts import Alert, collect
from billing.notices import (
    CHAT_CHANNELS,
    Notice,
    english,
    enqueue,
    private_address,
    reader_language,
)
from core.clock import Clock
from core.i18n import SOURCE_LANGUAGE, Translator, Translators
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
#: The outbox cause of a push (its reference is the day).
CAUSE = "alerts.daily"


def compose(day: date, alerts: Sequence[Alert], t: Translator | None = None) -> list[str]:
    """The push as messages of at most :data:`MESSAGE_CHARS`, split between lines, in ``t``'s
    language (English without one)."""
    t = t or english()
    when = f"{day:%Y-%m-%d}" if t.language == SOURCE_LANGUAGE else t.date(day)
    count = t.number(len(alerts))
    lines = [t("Switchboard alerts, {day} ({count} new):", day=when, count=count)]
    lines += alert_lines(alerts[:MAX_LISTED], t)
    if len(alerts) > MAX_LISTED:
        more = t.number(len(alerts) - MAX_LISTED)
        lines.append(t("… and {count} more: see /alerts", count=more))
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
        post: Callable[[Sequence[int]], None] | None = None,
        translators: Translators | None = None,
    ) -> None:
        self._sessions = sessions
        #: The catalogs the push is written with (English without them).
        self._translators = translators
        self._clock = clock
        self._hour = hour
        self._holder = holder
        self._lease_ttl = lease_ttl
        #: Delivers the messages written, right after commit (the outbox's ``post``).
        self._post = post
        #: The last day this process saw pushed (by itself or another process).
        self._done: date | None = None

    async def push_due(self) -> list[Alert] | None:
        """Push the day's new alerts if it is time; the alerts this process pushed, or None
        when it is not time yet, the day is done, or another process is pushing right now."""
        now = self._clock().astimezone(UTC)
        if now.hour < self._hour or self._done == now.date():
            return None
        async with self._sessions.begin() as session:
            if not await LeaseRepository(session).acquire(
                LEASE, self._holder, now, self._lease_ttl
            ):
                return None  # another process is pushing: look again at the next check
        try:
            sent = await self._push(now)
        finally:
            async with self._sessions.begin() as session:
                await LeaseRepository(session).release(LEASE, self._holder, self._clock())
        self._done = now.date()
        return sent

    async def _push(self, now: datetime) -> list[Alert]:
        async with self._sessions() as session:
            found = await collect(session, now)
        try:
            async with self._sessions.begin() as session:
                recorded = await SentAlertRepository(session).record_new_on(
                    [(a.push_day(now.date()), a.key) for a in found], now
                )
                fresh = [a for a in found if a.key in set(recorded)]
                written = await self._write(session, now, fresh) if fresh else []
        except IntegrityError:
            # Only when a lease ran out under a slow push: the other process sends them.
            log.warning("alerts of %s were being pushed by another process", now.date())
            return []
        if self._post is not None:
            self._post(written)
        log.info("pushed %d alerts in %d messages", len(fresh), len(written))
        return fresh

    async def _write(self, session: AsyncSession, now: datetime, fresh: list[Alert]) -> list[int]:
        """The push's messages to every admin's private chat, into the outbox."""
        by_language: dict[str, list[str]] = {}
        notices: list[Notice] = []
        for admin in await AdminRepository(session).list():
            if admin.channel not in CHAT_CHANNELS:
                continue  # a console admin: no chat to write to
            t = await self._translator(session, admin.channel, admin.external_id)
            if t.language not in by_language:
                by_language[t.language] = compose(now.date(), fresh, t)
            address = private_address(admin.channel, admin.external_id)
            notices += [Notice(address, text) for text in by_language[t.language]]
        # Each push is its own cause: a later push the same day (a new alert) is a new message.
        ref = f"{now.date().isoformat()}:{now.isoformat()}"
        return await enqueue(session, notices, cause_kind=CAUSE, cause_ref=ref, now=now)

    async def _translator(self, session: AsyncSession, channel: str, user_id: str) -> Translator:
        if self._translators is None:
            return english()
        default = self._translators.default
        language = await reader_language(
            session, channel=channel, user_id=user_id, tenant_id=None, default=default
        )
        return self._translators.get(language)
