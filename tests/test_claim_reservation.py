"""A plain text turn's claim on its update is written with its reservation, in one write
transaction; duplicates and refusals still leave exactly one claim and one answer."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bot.app import App
from storage.models import ProcessedUpdate, UsageEvent
from tests.conftest import admin, bind_console, console_message, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.sinks import RecordingSink


async def _claims(app: App) -> list[tuple[str, str]]:
    async with app.deps.sessions() as session:
        rows = (await session.execute(select(ProcessedUpdate))).scalars()
        return sorted((row.update_key, row.state) for row in rows)


async def test_a_turn_writes_its_claim_with_its_reservation(app: App) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    await say(app, "warm up", update_key="w")
    stats = app.deps.sessions.stats
    assert stats is not None
    writes = stats.writes
    assert (await say(app, "hello", update_key="k1")).deltas
    # claim + reservation, then the persist (claim answered), then the claim marked delivered
    assert stats.writes - writes == 3
    assert ("k1", "done") in await _claims(app)


async def test_the_same_update_twice_is_answered_and_charged_once(
    app: App, llm: FakeLLMServer
) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    first, second = await asyncio.gather(
        say(app, "hello", update_key="dup"), say(app, "hello", update_key="dup")
    )
    answered = [sink for sink in (first, second) if sink.deltas]
    assert len(answered) == 1
    assert [sink.texts for sink in (first, second) if not sink.deltas] == [[]]
    assert len(llm.requests) == 1
    async with app.deps.sessions() as session:
        events = list((await session.execute(select(UsageEvent))).scalars())
    assert [e.status for e in events] == ["settled"]
    assert await _claims(app) == [("dup", "done")]
    assert (await admin(app, "ledger", "verify")).data["ok"] is True


async def test_a_refused_turn_leaves_its_claim_done_and_a_redelivery_is_silent(
    app: App, llm: FakeLLMServer
) -> None:
    await tenant_with_tokens(app, tokens=0)
    await bind_console(app)
    refused = await say(app, "hello", update_key="poor")
    assert refused.texts and not refused.deltas
    assert await _claims(app) == [("poor", "done")]
    again = RecordingSink()
    ctx = await app.pipeline.handle(console_message("hello", update_key="poor"), again)
    assert ctx.outcome == "duplicate"
    assert again.texts == []
    assert llm.requests == []
