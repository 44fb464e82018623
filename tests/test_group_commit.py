"""Group commit (storage.group_commit): the write transactions waiting at one moment share one
database transaction, each in its own savepoint, and each returns only once it is committed."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import App
from handlers.telegram.adapter import private_scope
from storage.db import Sessions, create_engine, create_session_factory
from storage.db_stats import DbStats
from storage.models import ProcessedUpdate, Tenant, UsageEvent
from storage.repositories.tenants import BindingRepository, TenantRepository
from storage.transient import is_conflict, is_transient, retry_transient
from tests.conftest import AppFactory, admin, console_message, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.telegram_server import FakeTelegramServer
from tests.sinks import RecordingSink
from tests.test_faults import _child_env, _spawn_run, assert_invariants


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Sessions]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'group.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE log (id INTEGER PRIMARY KEY, who TEXT UNIQUE)"))
    yield create_session_factory(engine, DbStats())
    await engine.dispose()


async def _logged(sessions: Sessions) -> list[str]:
    async with sessions() as session:
        rows = await session.execute(text("SELECT who FROM log ORDER BY id"))
        return [str(who) for (who,) in rows]


async def test_waiting_writes_share_one_commit_and_a_bad_one_fails_alone(
    sessions: Sessions,
) -> None:
    stats = sessions.stats
    assert stats is not None
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with sessions.begin() as session:
            await session.execute(text("INSERT INTO log (who) VALUES ('first')"))
            holding.set()
            await release.wait()

    seen_after_return: dict[str, bool] = {}

    async def member(who: str) -> None:
        async with sessions.grouped() as session:
            await session.execute(text("INSERT INTO log (who) VALUES (:who)"), {"who": who})
            await asyncio.sleep(0)
            if who == "bad":
                raise ValueError("this member fails")
        # Returned: committed, so a fresh reader sees it.
        seen_after_return[who] = who in await _logged(sessions)

    holder = asyncio.create_task(hold())
    await holding.wait()
    members = [asyncio.create_task(member(who)) for who in ("a", "bad", "b", "first")]
    await asyncio.sleep(0.05)  # all four wait for the writer: one batch
    release.set()
    results = await asyncio.gather(holder, *members, return_exceptions=True)

    assert isinstance(results[2], ValueError)
    # "first" breaks the unique constraint: its savepoint is rolled back, nobody else's.
    assert results[4].__class__.__name__ == "IntegrityError"
    assert results[1] is None and results[3] is None
    assert await _logged(sessions) == ["first", "a", "b"]
    assert seen_after_return == {"a": True, "b": True}
    assert stats.batch_sizes == {4: 1}


async def test_a_failed_commit_reaches_every_member(sessions: Sessions) -> None:
    async with sessions.begin() as session:
        # A deferred foreign key is checked at commit: one member's bad row fails the batch's
        # commit, and every member is told (none of them was committed).
        await session.execute(
            text(
                "CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER "
                "REFERENCES log(id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )

    async def member(n: int) -> None:
        async with sessions.grouped() as session:
            parent = 1000 + n if n == 1 else None
            await session.execute(
                text("INSERT INTO child (id, parent) VALUES (:id, :parent)"),
                {"id": n, "parent": parent},
            )

    results = await asyncio.gather(*(member(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results), results
    async with sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM child"))).scalar_one() == 0


async def test_concurrent_turns_persist_in_batches_and_the_ledger_holds(app: App) -> None:
    await tenant_with_tokens(app)
    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get("acme")
        for n in range(12):
            await BindingRepository(session).bind(tenant, "console", f"tenant:acme{n}")
    stats = app.deps.sessions.stats
    assert stats is not None
    sinks = [RecordingSink() for _ in range(12)]
    held = asyncio.Event()

    async def hold_the_tenant() -> None:
        """Another transaction holds the tenant's row (SQLite: the writer) for a moment, as a
        busy service's writes do: the turns' statements now take too little time to overlap
        by themselves in a test this small."""
        async with app.deps.sessions.begin() as session:
            await session.execute(
                update(Tenant).where(Tenant.id == tenant.id).values(name=Tenant.name)
            )
            held.set()
            await asyncio.sleep(0.3)

    holder = asyncio.create_task(hold_the_tenant())
    await held.wait()
    await asyncio.gather(
        *(
            app.pipeline.handle(
                console_message("hello", slug=f"acme{n}", user=f"u{n}", update_key=f"batch-{n}"),
                sink,
            )
            for n, sink in enumerate(sinks)
        )
    )
    await holder
    assert all(sink.deltas and sink.texts for sink in sinks)
    # Twelve reservations (with their claims), twelve persists and twelve "delivered" marks on
    # the claims, in batches.
    assert sum(size * count for size, count in stats.batch_sizes.items()) == 36
    assert max(stats.batch_sizes) > 1, stats.batch_sizes
    verify = await admin(app, "ledger", "verify")
    assert verify.data["ok"] is True, verify.text


async def test_killed_mid_batch_loses_no_acknowledged_turn_and_charges_nothing_twice(
    make_app: AppFactory, database_url: str, llm: FakeLLMServer, tmp_path: Path
) -> None:
    """``kill -9`` as soon as the first answer is delivered, while the other answers (all
    finished streaming together) are being persisted in batches. Telegram then delivers every
    update again: each chat ends with its answer (a turn saved but not yet delivered gets the
    saved answer; one not saved is taken over and answered), each answer is charged once,
    every answer is in the library, nothing stays reserved and the ledger adds up. An answer
    is sent twice only if the kill fell between its delivery and the claim's "delivered" mark
    (at least once, not at most once: a paid answer must not be lost)."""
    app = await make_app()
    await tenant_with_tokens(app)
    users = [6001 + n for n in range(8)]
    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get("acme")
        for user in users:
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
            RECOVERY_GRACE_SECONDS="60",
        )
        llm.pause_fn = lambda _body: 1.0  # the answers all finish at about the same moment
        updates = [telegram.private_message(user, f"question from {user}") for user in users]
        first = await _spawn_run(env)
        try:
            for update in updates:
                await telegram.send_update(update)
            await telegram.wait_for(
                lambda: any(telegram.bot_texts(user) for user in users), within=60
            )
        finally:
            first.kill()
            await first.wait()
        acknowledged = [user for user in users if telegram.bot_texts(user)]
        assert acknowledged
        async with app.deps.sessions() as session:
            states = {
                c.update_key: c.state
                for c in (await session.execute(select(ProcessedUpdate))).scalars()
            }
        # Delivered, and killed before the claim said so: the one case allowed a second copy.
        unmarked = {
            user
            for user, update in zip(users, updates, strict=True)
            if user in acknowledged and states.get(str(update["update_id"])) == "answered"
        }

        llm.pause_fn = None
        second = await _spawn_run(env)
        try:
            # Up and polling (the first process had polled once, before any update).
            await telegram.wait_for(lambda: len(telegram.calls_to("deleteWebhook")) >= 2, 60)
            for update in updates:  # Telegram delivers every update again
                await telegram.send_update(update)
            for user in users:
                await telegram.wait_for_bot_messages(user, 1, within=60)
            await telegram.wait_for(lambda: telegram.queued_updates == 0, within=30)
            await asyncio.sleep(1.5)  # room for a second answer, if one were coming
        finally:
            second.terminate()
            _, err = await second.communicate()
        assert second.returncode == 0, err.decode()[-2000:]
        for user in users:
            copies = 2 if user in unmarked else 1
            assert telegram.bot_texts(user) == [llm.reply_text] * copies, (user, unmarked)
    await assert_invariants(app)
    async with app.deps.sessions() as session:
        events = list((await session.execute(select(UsageEvent))).scalars())
    settled = [e for e in events if e.status == "settled"]
    assert len(settled) == len(users)
    assert len({e.idempotency_key.split(":")[1] for e in settled}) == len(users)


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"),
    reason="SQLite is a local file: its connection cannot be cut",
)
@pytest.mark.parametrize("handed_over", [True, False], ids=["run_grouped", "grouped"])
async def test_a_lost_connection_fails_the_whole_batch_as_transient(
    database_url: str, handed_over: bool
) -> None:
    """The line to the database is cut while the batch's first member runs: the members after
    it must hear that the database is unreachable (and retry the transaction), not that their
    session is unusable (which no retry mends and would turn a saved answer into an error)."""
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    engine = create_engine(
        url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    )
    sessions = create_session_factory(engine, DbStats())
    try:
        async with sessions.begin() as session:
            await session.execute(text("CREATE TABLE log (id SERIAL PRIMARY KEY, who TEXT UNIQUE)"))
        errors: list[BaseException] = []
        cut = False

        def work(who: str) -> Callable[[AsyncSession], Awaitable[None]]:
            async def insert(session: AsyncSession) -> None:
                nonlocal cut
                await session.execute(text("INSERT INTO log (who) VALUES (:who)"), {"who": who})
                if not cut:
                    cut = True
                    proxy.cut()
                    asyncio.get_running_loop().call_later(0.5, proxy.restore)
                    await session.execute(text("SELECT 1"))

            return insert

        async def member(who: str) -> None:
            async def attempt() -> None:
                try:
                    if handed_over:
                        await sessions.run_grouped(work(who))
                    else:
                        async with sessions.grouped() as session:
                            await work(who)(session)
                except Exception as exc:
                    errors.append(exc)
                    raise

            await retry_transient(attempt, seconds=10, what="test")

        # One batch: the first member's writer task waits for a connection while the others join.
        await asyncio.gather(*(member(who) for who in ("a", "b", "c")))
        # Every attempt that failed was told the database was unreachable (retried until back).
        assert len(errors) >= 3, errors
        assert all(is_transient(e) for e in errors), errors
        async with sessions() as session:
            rows = await session.execute(text("SELECT who FROM log ORDER BY who"))
            assert [who for (who,) in rows] == ["a", "b", "c"]
    finally:
        await engine.dispose()
        await proxy.stop()


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"),
    reason="SQLite has one writer: its transactions never hold rows against each other",
)
@pytest.mark.parametrize("ordered", [True, False], ids=["by-tenant", "as-they-came"])
async def test_batches_at_once_take_shared_rows_in_one_order(
    database_url: str, ordered: bool
) -> None:
    """Two batches at once (reservations go in one, persists in the other), each with a member
    for row 1 and one for row 2, which came in opposite orders. Run by ``order`` (the tenant),
    both take row 1 first and one waits for the other. As they came, they deadlock: PostgreSQL
    rolls one back, which is then retried like an outage."""
    engine = create_engine(database_url)
    sessions = create_session_factory(engine, DbStats())
    try:
        async with sessions.begin() as session:
            await session.execute(text("CREATE TABLE account (id INTEGER PRIMARY KEY, n INTEGER)"))
            await session.execute(text("INSERT INTO account VALUES (1, 0), (2, 0)"))
        errors: list[BaseException] = []

        def bump(row: int) -> Callable[[AsyncSession], Awaitable[None]]:
            async def work(session: AsyncSession) -> None:
                await session.execute(
                    text("UPDATE account SET n = n + 1 WHERE id = :id"), {"id": row}
                )
                await asyncio.sleep(0.3)  # holding the row, as a batch of several turns does

            return work

        async def member(row: int, ahead: bool) -> None:
            async def attempt() -> None:
                try:
                    await sessions.run_grouped(bump(row), ahead=ahead, order=row if ordered else 0)
                except Exception as exc:
                    errors.append(exc)
                    raise

            await retry_transient(attempt, seconds=20, what="test")

        await asyncio.gather(
            asyncio.gather(member(2, True), member(1, True)),
            asyncio.gather(member(1, False), member(2, False)),
        )
        async with sessions() as session:
            rows = await session.execute(text("SELECT n FROM account ORDER BY id"))
            assert [n for (n,) in rows] == [2, 2]  # each member's write, once
        if ordered:
            assert errors == []
        else:
            assert errors and all(is_conflict(e) or is_transient(e) for e in errors), errors
            assert any(is_conflict(e) for e in errors), errors
    finally:
        await engine.dispose()
