"""Tenants, members, bindings and admin roles are cached per process and invalidated by the
configuration version: a change made by another process (another App on the same database)
is seen on the very next turn; balances are never served from the cache."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event

from bot.app import App
from storage.db_stats import DbStats
from tests.conftest import admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer

AppFactory = Callable[..., Awaitable[App]]
_keys = itertools.count(1)


async def _turn(app: App, text: str = "hello", **kwargs: str):  # type: ignore[no-untyped-def]
    """A turn with an update key, so its identity rides on the claim's version read."""
    return await say(app, text, update_key=f"k-{next(_keys)}", **kwargs)


async def _two_processes(make_app: AppFactory) -> tuple[App, App]:
    writer, server = await make_app(), await make_app()
    await tenant_with_tokens(writer)
    await bind_console(writer)
    assert (await _turn(server)).deltas, "the serving process answered and cached its tenant"
    return writer, server


async def test_a_suspension_elsewhere_stops_the_next_turn(make_app: AppFactory) -> None:
    writer, server = await _two_processes(make_app)
    await admin(writer, "tenant", "suspend", "acme")
    sink = await _turn(server)
    assert not sink.deltas
    assert sink.texts == ["This organisation's access is suspended. Please contact your provider."]
    await admin(writer, "tenant", "activate", "acme")
    assert (await _turn(server)).deltas


async def test_a_block_elsewhere_stops_the_members_next_turn(
    make_app: AppFactory, llm: FakeLLMServer
) -> None:
    writer, server = await _two_processes(make_app)
    await admin(writer, "tenant", "block", "acme", "console:u1")
    calls = len(llm.requests)
    sink = await _turn(server)
    assert sink.texts == ["Your access to this organisation is blocked. Ask its administrator."]
    assert len(llm.requests) == calls
    await admin(writer, "tenant", "unblock", "acme", "console:u1")
    assert (await _turn(server)).deltas


async def test_an_unlink_and_an_admin_role_elsewhere_are_seen(make_app: AppFactory) -> None:
    writer, server = await _two_processes(make_app)
    await admin(writer, "tenant", "unlink", "acme", "console:tenant:acme")
    sink = await _turn(server)
    assert sink.texts and "not linked to an organisation" in sink.texts[0]
    # A platform role granted elsewhere opens the admin commands on the next message.
    refused = await _turn(server, "/tenant list")
    await admin(writer, "admin", "add", "console:u1", "viewer")
    allowed = await _turn(server, "/tenant list")
    assert allowed.texts != refused.texts
    assert "acme" in allowed.texts[0]


async def test_a_top_up_elsewhere_is_seen_without_a_configuration_change(
    make_app: AppFactory,
) -> None:
    writer, server = await make_app(), await make_app()
    await tenant_with_tokens(writer, tokens=0)
    await bind_console(writer)
    refused = await _turn(server)
    assert not refused.deltas
    version = server.deps.config_cache.version
    await admin(writer, "tokens", "grant", "acme", "100000")
    answered = await _turn(server)
    assert answered.deltas, "the balance comes from the claim's read, not the cache"
    assert server.deps.config_cache.version == version, "a grant is not a configuration change"


async def test_a_cached_turn_skips_the_identity_read_until_the_version_moves(
    make_app: AppFactory,
) -> None:
    writer, server = await _two_processes(make_app)
    stats = server.deps.sessions.stats
    assert isinstance(stats, DbStats)

    async def transactions_of_a_turn() -> int:
        before = stats.transactions
        assert (await _turn(server)).deltas
        return stats.transactions - before

    cached = await transactions_of_a_turn()
    assert await transactions_of_a_turn() == cached
    # Any configuration change, even one this chat does not care about, empties the cache.
    await admin(writer, "admin", "add", "console:someone", "viewer")
    assert await transactions_of_a_turn() == cached + 1
    assert await transactions_of_a_turn() == cached


async def test_an_assistant_changed_elsewhere_is_used_on_the_next_turn(
    make_app: AppFactory, llm: FakeLLMServer
) -> None:
    """The assistants a tenant may use are cached too: a tenant override and a new prompt
    version written by another process reach the very next turn."""
    writer, server = await _two_processes(make_app)
    before = llm.last_request.json["instructions"]
    await admin(
        writer, "assistant", "override", "general", "--tenant", "acme",
        "--prompt", "You are Acme's in-house helper.",
    )  # fmt: skip
    assert (await _turn(server)).deltas
    assert llm.last_request.json["instructions"] == "You are Acme's in-house helper."
    await admin(writer, "assistant", "override", "general", "--tenant", "acme", "--clear")
    assert (await _turn(server)).deltas
    assert llm.last_request.json["instructions"] == before
    await admin(writer, "assistant", "prompt", "general", "You answer in haiku.")
    assert (await _turn(server)).deltas
    assert llm.last_request.json["instructions"] == "You answer in haiku."


async def test_a_cached_turn_does_not_read_the_assistants(make_app: AppFactory) -> None:
    writer, server = await _two_processes(make_app)
    reads: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM assistants" in statement:
            reads.append(statement)

    for engine in server.deps.sessions.engines:
        event.listen(engine.sync_engine, "before_cursor_execute", record)

    assert (await _turn(server)).deltas
    assert reads == []
    # A change to an assistant empties the cache: the next turn reads the assistants again.
    await admin(writer, "assistant", "prompt", "general", "You answer in haiku.")
    assert (await _turn(server)).deltas
    assert len(reads) == 1
    assert (await _turn(server)).deltas
    assert len(reads) == 1
