"""A turn's answer is committed before its final message is sent. A process that dies in between
must not leave a paid answer nobody sees: the claim stays ``answered`` (with the answer) until
the message is out, and the answer is delivered on a redelivery of the update or, failing
that, by the interrupted-turns sweep through the outbox; never asked of the assistant again."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from billing.holders import local_holder
from bot.app import App
from handlers.recovery import ANSWER_CAUSE, InterruptedTurns
from storage.models import Message, OutboxMessage, ProcessedUpdate, UsageEvent
from storage.repositories.tenants import BindingRepository, TenantRepository
from tests.conftest import AppFactory, admin, console_message, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.telegram_server import FakeTelegramServer
from tests.sinks import RecordingSink
from tests.test_alerts import Clock
from tests.test_outbox import REPLY_TO, T0, USER


async def _linked_tenant(app: App) -> None:
    """A tenant with tokens, and the console's chat of ``console_message`` linked to it."""
    await tenant_with_tokens(app)
    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get("acme")
        await BindingRepository(session).bind(tenant, "console", "tenant:acme")


async def _dead_holder() -> str:
    """The holder string of a process of this host that has exited."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()
    return local_holder(proc.pid)


async def _claim(app: App, key: str) -> ProcessedUpdate:
    async with app.deps.sessions() as session:
        return (
            await session.execute(select(ProcessedUpdate).where(ProcessedUpdate.update_key == key))
        ).scalar_one()


async def _die_after_saving(app: App, key: str, holder: str) -> None:
    """Put the claim back as a process that saved the answer and died before sending it
    leaves it: ``answered`` by ``holder``, its lease still running."""
    async with app.deps.sessions.begin() as session:
        await session.execute(
            update(ProcessedUpdate)
            .where(ProcessedUpdate.update_key == key)
            .values(
                state="answered",
                holder=holder,
                lease_expires_at=app.deps.clock() + timedelta(minutes=5),
            )
        )


async def _settled(app: App) -> int:
    async with app.deps.sessions() as session:
        events = (await session.execute(select(UsageEvent))).scalars().all()
    return sum(e.status == "settled" for e in events)


async def test_an_answered_turn_is_marked_done_once_delivered(app: App) -> None:
    await _linked_tenant(app)
    sink = RecordingSink()
    await app.pipeline.handle(console_message("hello", update_key="u-1"), sink)
    claim = await _claim(app, "u-1")
    assert sink.texts, "answered"
    assert claim.state == "done"
    assert claim.answer_message_id is not None
    async with app.deps.sessions() as session:
        saved = await session.get(Message, claim.answer_message_id)
    assert saved is not None and (saved.role, saved.content) == ("assistant", sink.texts[-1])


async def test_a_redelivered_update_gets_the_saved_answer_without_a_second_call(
    app: App, llm: FakeLLMServer
) -> None:
    await _linked_tenant(app)
    first = RecordingSink()
    await app.pipeline.handle(console_message("hello", update_key="u-2"), first)
    answer = first.texts[-1]
    await _die_after_saving(app, "u-2", await _dead_holder())
    calls = len(llm.requests)

    again = RecordingSink()
    await app.pipeline.handle(console_message("hello", update_key="u-2"), again)

    assert again.texts == [answer]
    assert again.deltas == [], "nothing streamed: the answer comes whole"
    assert len(llm.requests) == calls, "the assistant is not asked again"
    assert await _settled(app) == 1, "charged once"
    assert (await _claim(app, "u-2")).state == "done"
    assert (await admin(app, "ledger", "verify")).data["ok"] is True
    third = RecordingSink()  # and from now on it is an ordinary duplicate
    await app.pipeline.handle(console_message("hello", update_key="u-2"), third)
    assert third.texts == []


async def test_an_answered_claim_of_a_live_process_is_left_to_it(app: App) -> None:
    """Its process is still sending the answer: a redelivery meanwhile is a duplicate."""
    await _linked_tenant(app)
    await app.pipeline.handle(console_message("hello", update_key="u-3"), RecordingSink())
    await _die_after_saving(app, "u-3", app.deps.metering.holder)  # this process: alive

    again = RecordingSink()
    await app.pipeline.handle(console_message("hello", update_key="u-3"), again)

    assert again.texts == []
    assert (await _claim(app, "u-3")).state == "answered"


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegramServer]:
    async with FakeTelegramServer() as fake:
        yield fake


async def test_the_sweep_delivers_a_saved_answer_through_the_outbox_once(
    make_app: AppFactory, telegram: FakeTelegramServer
) -> None:
    """No redelivery comes (Telegram's polling confirmed the update long ago): the sweep
    sends the saved answer to the chat, once across processes, instead of an apology."""
    clock = Clock(T0)
    app = await make_app(
        clock=clock, TELEGRAM_BOT_TOKEN=telegram.token, TELEGRAM_API_BASE=telegram.base_url
    )
    await _linked_tenant(app)
    sink = RecordingSink()
    await app.pipeline.handle(console_message("hello", update_key="u-4"), sink)
    async with app.deps.sessions.begin() as session:  # as a Telegram chat's claim would be
        await session.execute(
            update(ProcessedUpdate)
            .where(ProcessedUpdate.update_key == "u-4")
            .values(
                channel="telegram",
                state="answered",
                holder=await _dead_holder(),
                reply_to=REPLY_TO,
                created_at=T0 - timedelta(minutes=5),
            )
        )
    sweeps = [InterruptedTurns(app.deps.sessions, clock, grace=timedelta(0)) for _ in range(2)]

    written = await asyncio.gather(*(sweep.sweep() for sweep in sweeps))
    report = await app.deps.outbox.deliver([i for ids in written for i in ids])

    assert sorted(len(ids) for ids in written) == [0, 1], "delivered once, across processes"
    assert report.sent == 1
    assert telegram.bot_texts(USER) == [sink.texts[-1]]
    async with app.deps.sessions() as session:
        [row] = (await session.execute(select(OutboxMessage))).scalars().all()
    assert (row.cause_kind, row.status) == (ANSWER_CAUSE, "sent")
    assert (await _claim(app, "u-4")).state == "done"
