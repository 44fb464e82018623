"""The durable outbox: one table of messages written with their cause, delivered after commit by
whichever process reaches the channel (``switchboard run``'s worker, or the shell through the
Bot API), leased so two processes never send the same row, retried with back-off, given up
with an alert after 24 hours. Driven through the real adapters against the fake Bot API."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from billing.notices import Notice, enqueue
from bot.app import App
from bot.channels import build_channels
from bot.cli import main
from bot.service import ServiceRunner
from core.envelope import ChatAddress
from handlers.outbox import LEASE
from handlers.recovery import ASK_AGAIN, InterruptedTurns
from storage import migrate
from storage.db import create_engine
from storage.models import OutboxMessage
from storage.repositories.outbox import OutboxRepository
from storage.repositories.tenants import BindingRepository, TenantRepository
from storage.repositories.updates import UpdateClaimRepository
from tests.conftest import AppFactory, admin, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.telegram_server import FakeTelegramServer
from tests.test_alerts import Clock

USER = 4242
T0 = datetime(2026, 12, 4, 9, tzinfo=UTC)
#: A claim's chat as ``DedupMiddleware`` stores it.
REPLY_TO: dict[str, str | bool] = {
    "chat_key": str(USER),
    "thread_key": "",
    "user_id": str(USER),
    "private": True,
}


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegramServer]:
    async with FakeTelegramServer() as fake:
        yield fake


def _documents(fake: FakeTelegramServer, chat: int) -> list[str]:
    return [m.document["file_name"] for m in fake.chat_messages(chat) if m.document]


async def _rows(app: App) -> list[OutboxMessage]:
    async with app.deps.sessions() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        return list((await session.execute(query)).scalars())


async def _link_private_chat(app: App, slug: str, user: int) -> None:
    """A chat bound the way ``/start`` binds it: with the address it was bound from."""
    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(slug)
        address = ChatAddress("telegram", str(user), user_id=str(user), is_private=True)
        await BindingRepository(session).bind(tenant, "telegram", f"user:{user}", address.to_json())


async def _shell(env: dict[str, str], *words: str) -> tuple[int, str]:
    """``switchboard admin WORDS`` through the CLI's real entry (its own process objects)."""
    out = io.StringIO()
    code = await asyncio.to_thread(main, ["admin", *words], environ=env, stdout=out)
    return code, out.getvalue()


async def test_invoice_send_from_the_shell_while_run_serves_telegram_reaches_the_chat_once(
    make_app: AppFactory,
    database_url: str,
    llm: FakeLLMServer,
    tmp_path: Path,
    telegram: FakeTelegramServer,
) -> None:
    tokens = {"TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_BASE": telegram.base_url}
    app = await make_app(**tokens)
    service = ServiceRunner(app, build_channels(app.settings, app.deps, app.pipeline, app.registry))
    await service.start()
    worker = asyncio.create_task(app.deps.outbox.work(poll_seconds=0.05))
    shell_env = {
        "DATABASE_URL": database_url,
        "MEDIA_DIR": str(app.settings.media_dir),  # the files of its messages are shared
        "OPENAI_BASE_URL": llm.base_url,
        "DEFAULT_PROVIDER": "openai",
        "DEFAULT_MODEL": "gpt-4o-mini",
    }
    try:
        code = await tenant_with_tokens(app, "acme", tokens=0)
        await telegram.send_update(telegram.private_message(USER, f"/start {code}"))
        await telegram.wait_for_bot_messages(USER)
        first = (await admin(app, "invoice", "new", "acme", "100", "Consulting")).data["number"]
        second = (await admin(app, "invoice", "new", "acme", "50", "Support")).data["number"]

        # A shell with the bot token delivers its own message right after commit.
        status, out = await _shell({**shell_env, **tokens}, "invoice", "send", first)
        assert status == 0 and out.startswith(f"Sent {first}") and "to 1 of 1 recipient" in out
        # A shell without it leaves the message to the running process's worker.
        status, out = await _shell(shell_env, "invoice", "send", second)
        assert status == 0 and out.startswith(f"Queued {second} for 1 recipient(s)"), out
        await telegram.wait_for(lambda: len(_documents(telegram, USER)) == 2)
        await asyncio.sleep(0.3)  # a few more worker passes: nothing goes out twice
    finally:
        worker.cancel()
        await service.stop()

    assert _documents(telegram, USER) == [f"{first}.pdf", f"{second}.pdf"]
    for number in (first, second):
        assert (await admin(app, "invoice", "show", number)).data["status"] == "sent"
    rows = await _rows(app)
    assert [(r.status, r.attempts) for r in rows] == [("sent", 1), ("sent", 1)]


async def test_a_failed_delivery_is_retried_by_the_worker_and_sent_once(
    make_app: AppFactory, telegram: FakeTelegramServer
) -> None:
    clock = Clock(T0)
    app = await make_app(
        clock=clock, TELEGRAM_BOT_TOKEN=telegram.token, TELEGRAM_API_BASE=telegram.base_url
    )
    await tenant_with_tokens(app, "acme", tokens=0)
    await _link_private_chat(app, "acme", USER)
    number = (await admin(app, "invoice", "new", "acme", "100", "Consulting")).data["number"]
    telegram.fail_next("sendDocument", status=500, count=3)  # beyond the Bot API client's retries

    queued = await admin(app, "invoice", "send", number)

    assert queued.text.startswith(f"Queued {number} for 1 recipient(s), none reached yet (")
    assert (await admin(app, "invoice", "show", number)).data["status"] == "draft"
    [row] = await _rows(app)
    assert (row.status, row.attempts, row.next_attempt_at) == (
        "pending",
        1,
        T0 + timedelta(seconds=30),
    )
    assert "injected failure" in (row.last_error or "")

    outbox = app.deps.outbox
    assert (await outbox.deliver_due()).sent == 0, "waits for its back-off"
    clock.at = T0 + timedelta(seconds=30)
    assert (await outbox.deliver_due()).sent == 1
    clock.at += timedelta(hours=1)
    assert (await outbox.deliver_due()).sent == 0

    assert _documents(telegram, USER) == [f"{number}.pdf"]
    assert (await admin(app, "invoice", "show", number)).data["status"] == "sent"
    [row] = await _rows(app)
    assert (row.status, row.attempts) == ("sent", 2)


async def test_two_workers_never_send_the_same_row(
    make_app: AppFactory, telegram: FakeTelegramServer
) -> None:
    tokens = {"TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_BASE": telegram.base_url}
    first, second = await make_app(**tokens), await make_app(**tokens)
    chats = range(7000, 7030)
    async with first.deps.sessions.begin() as session:
        notices = [Notice(ChatAddress("telegram", str(c)), f"hello {c}") for c in chats]
        ids = await enqueue(session, notices, cause_kind="test", now=first.deps.clock())
    assert len(ids) == len(chats)

    reports = await asyncio.gather(
        first.deps.outbox.deliver_due(), second.deps.outbox.deliver_due()
    )

    assert sum(r.sent for r in reports) == len(chats)
    for chat in chats:
        assert telegram.bot_texts(chat) == [f"hello {chat}"]
    assert {r.status for r in await _rows(first)} == {"sent"}


async def test_a_cause_writes_each_message_to_a_recipient_once(app: App) -> None:
    address = ChatAddress("telegram", "1")
    notices = [Notice(address, "a"), Notice(address, "b"), Notice(ChatAddress("console", "x"), "c")]
    for _ in range(2):
        async with app.deps.sessions.begin() as session:
            await enqueue(session, notices, cause_kind="stripe", cause_ref="evt_1", now=T0)
    assert [r.text for r in await _rows(app)] == ["a", "b"], "nothing twice, nothing to console"


async def test_a_row_left_sending_by_a_crashed_process_is_sent_after_its_lease(
    make_app: AppFactory, telegram: FakeTelegramServer
) -> None:
    clock = Clock(T0)
    app = await make_app(
        clock=clock, TELEGRAM_BOT_TOKEN=telegram.token, TELEGRAM_API_BASE=telegram.base_url
    )
    async with app.deps.sessions.begin() as session:
        [row_id] = await enqueue(
            session, [Notice(ChatAddress("telegram", str(USER)), "hi")], cause_kind="test", now=T0
        )
        # A process took it and died before settling it.
        assert await OutboxRepository(session).claim(row_id, "crashed", T0, T0 + LEASE)

    assert (await app.deps.outbox.deliver_due()).sent == 0, "still leased"
    clock.at = T0 + LEASE
    assert (await app.deps.outbox.deliver_due()).sent == 1
    assert telegram.bot_texts(USER) == ["hi"]
    [row] = await _rows(app)
    assert (row.status, row.attempts) == ("sent", 2)


async def test_a_message_undelivered_for_24_hours_is_failed_with_an_alert(
    make_app: AppFactory,
) -> None:
    clock = Clock(T0)
    app = await make_app(clock=clock)  # no process reaches Telegram
    await tenant_with_tokens(app, "acme", tokens=0)
    await _link_private_chat(app, "acme", USER)
    number = (await admin(app, "invoice", "new", "acme", "100", "Consulting")).data["number"]
    assert (await admin(app, "invoice", "send", number)).text.startswith(f"Queued {number}")

    clock.at = T0 + timedelta(hours=23, minutes=59)
    await app.deps.outbox.deliver_due()
    assert [r.status for r in await _rows(app)] == ["pending"]
    clock.at = T0 + timedelta(hours=24)
    await app.deps.outbox.deliver_due()
    await app.deps.outbox.deliver_due()

    [row] = await _rows(app)
    assert row.status == "failed"
    [alert] = (await admin(app, "alerts")).data
    assert alert["tenant"] == "acme"
    assert alert["detail"].startswith(
        f"outbox failed: gave up delivering a message (invoice.send {number}@"
    )
    assert "to telegram 4242 after 0 attempt(s) in 24 h" in alert["detail"]
    assert (await admin(app, "invoice", "show", number)).data["status"] == "draft"


async def test_a_crash_apology_goes_through_the_outbox_once(
    make_app: AppFactory, telegram: FakeTelegramServer
) -> None:
    clock = Clock(T0)
    app = await make_app(
        clock=clock, TELEGRAM_BOT_TOKEN=telegram.token, TELEGRAM_API_BASE=telegram.base_url
    )
    async with app.deps.sessions.begin() as session:
        UpdateClaimRepository(session).add(
            "telegram",
            "update-1",
            holder="another-host:1:x",
            lease_expires_at=T0 - timedelta(seconds=1),
            reply_to=REPLY_TO,
            now=T0 - timedelta(minutes=5),
        )
    sweeps = [InterruptedTurns(app.deps.sessions, clock, grace=timedelta(0)) for _ in range(2)]

    written = await asyncio.gather(*(sweep.sweep() for sweep in sweeps))
    report = await app.deps.outbox.deliver([i for ids in written for i in ids])

    assert sorted(len(ids) for ids in written) == [0, 1], "abandoned once, across processes"
    assert report.sent == 1
    assert telegram.bot_texts(USER) == [ASK_AGAIN]
    [row] = await _rows(app)
    assert (row.cause_kind, row.status) == ("turn.interrupted", "sent")


async def test_the_migration_stores_the_address_of_existing_bindings(database_url: str) -> None:
    from sqlalchemy import text

    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine, "0013")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO tenants (slug, name, status, plan, billing_currency, "
                    "vat_rate_ppm, token_balance, tokens_reserved, created_at) VALUES "
                    "('acme', 'Acme', 'trial', 'prepaid', 'EUR', 200000, 0, 0, :now)"
                ),
                {"now": T0},
            )
            for channel, scope in (
                ("telegram", "user:42"),
                ("telegram", "chat:-100"),
                ("slack", "team:T0001"),
            ):
                await conn.execute(
                    text(
                        "INSERT INTO channel_bindings (tenant_id, channel, scope_key, created_at) "
                        "SELECT id, :channel, :scope, :now FROM tenants"
                    ),
                    {"channel": channel, "scope": scope, "now": T0},
                )
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(text("SELECT scope_key, address FROM channel_bindings"))
            ).all()
    finally:
        await engine.dispose()
    import json

    found = {scope: (json.loads(a) if isinstance(a, str) else a) for scope, a in rows}
    assert found == {
        "user:42": {"channel": "telegram", "chat_key": "42", "user_id": "42", "thread_key": "",
                    "is_private": True},
        "chat:-100": {"channel": "telegram", "chat_key": "-100", "user_id": "", "thread_key": "",
                      "is_private": False},
        "team:T0001": None,
    }  # fmt: skip
