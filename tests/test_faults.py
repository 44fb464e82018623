"""Fault injection: after each fault the accounting invariants still hold.

- balance = ledger sum (``ledger verify``);
- Σ charged = Σ provider-reported tokens (input + output) of answered calls;
- ``tokens_reserved`` back to 0 within a bounded time;
- every answered turn is in the library; no reply is sent twice.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.app import App
from storage.models import ContentItem, Tenant, UsageEvent
from tests.conftest import AppFactory, admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.tcp_proxy import TcpProxy
from tests.sinks import RecordingSink

ON_POSTGRES = bool(os.environ.get("TEST_DATABASE_URL"))


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
