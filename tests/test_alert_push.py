"""The daily alert push of ``switchboard run``: at ``ALERTS_HOUR``, once per alert per day, by
one process however many run (a lease row and ``sent_alerts``), written into the outbox for
every admin's private chat and delivered through the real Telegram and Slack channels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from billing.alerts import Alert
from bot.app import App
from bot.channels import build_channels
from bot.service import ServiceRunner
from bot.settings import load_settings
from core.errors import ConfigurationError
from handlers.alert_push import MESSAGE_CHARS, compose
from handlers.slack import SlackChannel
from handlers.telegram import TelegramChannel
from storage.models import OutboxMessage, SentAlert, Tenant
from storage.repositories.leases import LeaseRepository
from tests.conftest import AppFactory, admin, tenant_with_tokens
from tests.fakes.slack_server import FakeSlackServer
from tests.fakes.telegram_server import FakeTelegramServer
from tests.test_alerts import Clock

DAY = datetime(2026, 11, 22, tzinfo=UTC)
ADMINS = ("telegram:111", "slack:T0001/U0002", "console:ops")


async def received(app: App) -> list[tuple[str, str, str]]:
    """(channel, chat, alert line) for every alert line the pushes wrote into the outbox."""
    async with app.deps.sessions() as session:
        rows = (await session.execute(select(OutboxMessage))).scalars()
        return sorted(
            (row.channel, row.chat_key, line)
            for row in rows
            if row.cause_kind == "alerts.daily"
            for line in row.text.splitlines()
            if line.startswith("•")
        )


async def _trial_ends(app: App, slug: str, at: datetime) -> None:
    async with app.deps.sessions.begin() as session:
        await session.execute(
            update(Tenant)
            .where(Tenant.slug == slug)
            .values(trial_ends_at=at, last_activity_at=at, created_at=at - timedelta(days=1))
        )


@pytest.fixture
async def clock() -> Clock:
    return Clock(DAY.replace(hour=7, minute=59))


@pytest.fixture
async def apps(make_app: AppFactory, clock: Clock) -> tuple[App, App]:
    """Two processes on one database, as two ``switchboard run`` would be."""
    first: App = await make_app(clock=clock, ALERTS_HOUR="8")
    second: App = await make_app(clock=clock, ALERTS_HOUR="8")
    for identity in ADMINS:
        await admin(first, "admin", "add", identity, "viewer")
    for slug in ("acme", "beta"):
        await tenant_with_tokens(first, slug, tokens=0)
        await _trial_ends(first, slug, DAY + timedelta(days=1))
    return first, second


async def test_two_processes_send_each_alert_once_a_day(
    apps: tuple[App, App], clock: Clock
) -> None:
    runners = [ServiceRunner(app, []) for app in apps]

    async def both() -> list[Any]:
        return list(await asyncio.gather(*(r.alerts.push_due() for r in runners)))

    assert await both() == [None, None], "07:59 is before ALERTS_HOUR"
    assert await received(apps[0]) == []

    clock.at = DAY.replace(hour=8)
    outcomes = await both()
    assert sorted(len(o or []) for o in outcomes) == [0, 2], (
        "one process pushed both alerts; the other found the lease taken or nothing new"
    )
    expected = [
        (channel, chat, f"• Trial · {slug}: trial ends on 2026-11-23 00:00 UTC (in 16 hours)")
        for channel, chat in (("slack", "T0001/U0002"), ("telegram", "111"))
        for slug in ("acme", "beta")
    ]
    assert await received(apps[0]) == expected, "the console admin has no chat to write to"

    clock.at = DAY.replace(hour=9)
    await both()  # the other process's next check: it finds them sent
    await both()
    assert len(await received(apps[0])) == 4, "nothing twice on the same day"

    # A new alert during the day reaches admins when a process (re)starts and checks.
    await tenant_with_tokens(apps[0], "gamma", tokens=0)
    await _trial_ends(apps[0], "gamma", DAY + timedelta(days=2))
    restarted = ServiceRunner(apps[1], [])
    [new] = await restarted.alerts.push_due() or []
    assert new.tenant == "gamma"
    assert [(c, chat) for c, chat, line in await received(apps[0]) if "gamma" in line] == [
        ("slack", "T0001/U0002"),
        ("telegram", "111"),
    ]

    clock.at = DAY + timedelta(days=1, hours=8)
    await both()
    async with apps[0].deps.sessions() as session:
        per_day = dict(
            (
                await session.execute(select(SentAlert.day, func.count()).group_by(SentAlert.day))
            ).all()
        )
    assert per_day == {DAY.date(): 3, (DAY + timedelta(days=1)).date(): 3}, (
        "alerts that last are pushed again the next day, once"
    )
    assert len(await received(apps[0])) == 4 + 2 + 2 * 3


async def test_the_lease_has_one_holder_at_a_time(app: App) -> None:
    now = DAY
    ttl = timedelta(minutes=10)

    async def take(holder: str, at: datetime) -> bool:
        async with app.deps.sessions.begin() as session:
            return await LeaseRepository(session).acquire("job", holder, at, ttl)

    results = await asyncio.gather(*(take(f"p{n}", now) for n in range(5)))
    assert sorted(results) == [False] * 4 + [True]
    holder = f"p{results.index(True)}"
    other = "p9"
    assert await take(holder, now + timedelta(minutes=5)), "the holder extends its lease"
    assert not await take(other, now + timedelta(minutes=14)), "still held (extended)"
    assert await take(other, now + timedelta(minutes=15)), "free once expired"
    async with app.deps.sessions.begin() as session:
        assert not await LeaseRepository(session).release("job", holder, now)
        assert await LeaseRepository(session).release("job", other, now + timedelta(minutes=16))
    assert await take(holder, now + timedelta(minutes=16)), "released: free at once"


def test_a_long_push_is_split_between_lines() -> None:
    alerts = [Alert("inactive", f"tenant-{n:03}", "x" * 90) for n in range(200)]
    messages = compose(DAY.date(), alerts)
    assert len(messages) > 1 and all(len(m) <= MESSAGE_CHARS for m in messages)
    lines = "\n".join(messages).splitlines()
    assert lines[0] == "Switchboard alerts, 2026-11-22 (200 new):"
    assert sum(line.startswith("•") for line in lines) == 60
    assert lines[-1] == "… and 140 more: see /alerts"


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTelegramServer, FakeSlackServer]]:
    slack = FakeSlackServer()
    await slack.start()
    async with FakeTelegramServer() as telegram:
        yield telegram, slack
    await slack.stop()


async def test_admins_get_a_private_message_on_telegram_and_slack(
    make_app: AppFactory, clock: Clock, fakes: tuple[FakeTelegramServer, FakeSlackServer]
) -> None:
    telegram, slack = fakes
    clock.at = DAY.replace(hour=8, minute=30)
    app: App = await make_app(
        clock=clock,
        TELEGRAM_BOT_TOKEN=telegram.token,
        TELEGRAM_API_BASE=telegram.base_url,
        SLACK_BOT_TOKEN=slack.token,
        SLACK_SIGNING_SECRET="signing-secret",
        SLACK_API_BASE=slack.api_base,
        SUPERADMINS="telegram:111,slack:T0001/U0002",
    )
    await tenant_with_tokens(app, "acme", tokens=0)
    await _trial_ends(app, "acme", DAY - timedelta(days=1))
    channels = build_channels(app.settings, app.deps, app.pipeline, app.registry)
    service = ServiceRunner(app, channels)
    try:
        [sent] = await service.alerts.push_due() or []
        await app.deps.outbox.drain(10)  # delivered right after commit, through the channels
    finally:
        for channel in channels:
            await channel.stop()
    assert {type(c) for c in channels} == {TelegramChannel, SlackChannel}
    assert sent.tenant == "acme"
    expected = "Switchboard alerts, 2026-11-22 (1 new):\n• Trial · acme: trial ended on 2026-11-21"
    assert telegram.bot_texts(111) == [expected]
    [message] = slack.messages
    assert (message.channel, message.text) == ("U0002", expected), "the app's DM with the admin"


def test_alerts_hour_is_an_hour_of_the_day() -> None:
    assert load_settings({}).alerts_hour == 8
    assert load_settings({"ALERTS_HOUR": "0"}).alerts_hour == 0
    for bad in ("24", "-1", "eight"):
        with pytest.raises(ConfigurationError) as refused:
            load_settings({"ALERTS_HOUR": bad})
        [problem] = refused.value.problems
        assert problem.startswith("ALERTS_HOUR: "), problem
