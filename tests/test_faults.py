"""Fault injection: after each fault the accounting invariants still hold.

- balance = ledger sum (``ledger verify``);
- Σ charged = Σ provider-reported tokens (input + output) of answered calls;
- ``tokens_reserved`` back to 0 within a bounded time;
- every answered turn is in the library; no reply is sent twice.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.app import App
from handlers.recovery import ASK_AGAIN
from handlers.telegram.adapter import private_scope
from storage.models import ContentItem, Tenant, UsageEvent
from storage.repositories.tenants import BindingRepository, TenantRepository
from tests.conftest import AppFactory, admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.telegram_server import FakeTelegramServer
from tests.sinks import RecordingSink

ON_POSTGRES = bool(os.environ.get("TEST_DATABASE_URL"))
ALICE, BOB = 5001, 5002


async def assert_invariants(app: App, *, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        async with app.deps.sessions() as session:
            reserved = (await session.execute(select(func.sum(Tenant.tokens_reserved)))).scalar()
        if not reserved or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert not reserved, f"{reserved} tokens still reserved after {within}s"

    verify = await admin(app, "ledger", "verify")
    assert verify.data["ok"] is True, verify.text
    async with app.deps.sessions() as session:
        events = list((await session.execute(select(UsageEvent))).scalars())
        items = int((await session.execute(select(func.count(ContentItem.id)))).scalar_one())
    answered = [e for e in events if e.status == "settled"]
    assert sum(e.charged_tokens for e in answered) == sum(
        e.input_tokens + e.output_tokens for e in answered
    )
    assert [e for e in events if e.status == "reserved"] == []
    assert items == len([e for e in answered if e.kind == "chat"])


def assert_one_reply_each(sinks: list[RecordingSink], reply: str) -> None:
    assert [s.texts for s in sinks] == [[reply]] * len(sinks)


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    url = make_url(database_url)
    server = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await server.start()
    yield server
    await server.stop()


@pytest.mark.skipif(
    not ON_POSTGRES,
    reason="SQLite is a local file: a locked database makes writers wait, it cannot go away",
)
async def test_database_outage_while_answers_are_saved(
    make_app: AppFactory, database_url: str, proxy: TcpProxy, llm: FakeLLMServer
) -> None:
    """The database goes away after 20 answers started and comes back 2 s later: each answer
    is saved when it is back, then delivered; nothing is lost, nothing stays reserved."""
    url = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    app = await make_app(DATABASE_URL=url.render_as_string(hide_password=False))
    await tenant_with_tokens(app)
    await bind_console(app)
    llm.pause_fn = lambda _body: 0.5

    turns = [asyncio.create_task(say(app, f"question {i}", user=f"u{i}")) for i in range(20)]
    await _until_reserved(app, count=20)
    proxy.cut()
    await asyncio.sleep(2.0)
    proxy.restore()
    sinks = await asyncio.gather(*turns)

    assert_one_reply_each(sinks, llm.reply_text)
    await assert_invariants(app)
    async with app.deps.sessions() as session:
        settled = (
            await session.execute(
                select(func.count(UsageEvent.id)).where(UsageEvent.status == "settled")
            )
        ).scalar_one()
    assert settled == 20


async def test_provider_over_reporting_keeps_the_invariants(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app, tokens=2_000)
    await bind_console(app)
    llm.extra_input_tokens = 700
    sinks = await asyncio.gather(*(say(app, f"hi {i}", user=f"u{i}") for i in range(5)))
    answered = [s for s in sinks if s.texts == [llm.reply_text]]
    assert answered, "calls are served while the balance lasts"
    await assert_invariants(app)


async def _until_reserved(app: App, *, count: int) -> None:
    for _ in range(500):
        async with app.deps.sessions() as session:
            open_calls = (
                await session.execute(
                    select(func.count(UsageEvent.id)).where(UsageEvent.status == "reserved")
                )
            ).scalar_one()
        if open_calls >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} calls reserved")


# -- a process killed mid-turn -------------------------------------------------------------------


async def _spawn_run(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--log-level",
        "WARNING",
        "run",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_killed_mid_turn_redelivered_update_is_answered_and_the_other_user_told(
    make_app: AppFactory, database_url: str, llm: FakeLLMServer, tmp_path: Path
) -> None:
    """``kill -9`` while two answers stream. At restart, the update Telegram redelivers is
    answered (its claim is taken over); the user whose update is not redelivered is told to ask
    again; the reservations of the dead process are released; the ledger holds."""
    app = await make_app()
    await tenant_with_tokens(app)
    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get("acme")
        for user in (ALICE, BOB):
            await BindingRepository(session).bind(tenant, "telegram", private_scope(user))

    async with FakeTelegramServer() as telegram:
        env = _child_env(
            tmp_path,
            DATABASE_URL=database_url,
            OPENAI_BASE_URL=llm.base_url,
            DEFAULT_PROVIDER="openai",
            DEFAULT_MODEL="gpt-4o-mini",
            TELEGRAM_BOT_TOKEN=telegram.token,
            TELEGRAM_API_BASE=telegram.base_url,
            HTTP_PORT="0",
            RECOVERY_GRACE_SECONDS="3",
        )
        llm.pause_fn = lambda _body: 60.0  # both answers are still running when it dies
        first = await _spawn_run(env)
        try:
            alice = telegram.private_message(ALICE, "question from alice")
            await telegram.send_update(alice)
            await telegram.send_update(telegram.private_message(BOB, "question from bob"))
            await telegram.wait_for(lambda: len(llm.requests) == 2, within=30)
            # Long polling confirmed both updates: Telegram will not send them again by itself.
            await telegram.wait_for(lambda: telegram.queued_updates == 0, within=30)
        finally:
            first.kill()
            await first.wait()

        llm.pause_fn = None
        second = await _spawn_run(env)
        try:
            await telegram.send_update(alice)  # Telegram redelivers Alice's update, not Bob's
            await telegram.wait_for_bot_messages(ALICE, 1)
            await telegram.wait_for_bot_messages(BOB, 1, within=30)
        finally:
            second.terminate()
            _, err = await second.communicate()
        assert second.returncode == 0, err.decode()[-2000:]

        assert telegram.bot_texts(ALICE) == [llm.reply_text]
        assert telegram.bot_texts(BOB) == [ASK_AGAIN]
    await assert_invariants(app)
    async with app.deps.sessions() as session:
        events = list((await session.execute(select(UsageEvent))).scalars())
    assert sorted(e.status for e in events) == ["released", "released", "settled"]


def _child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    root = str(Path(__file__).resolve().parents[1])
    return {**keep, "PYTHONPATH": root, "MEDIA_DIR": str(tmp_path / "media"), **extra}
