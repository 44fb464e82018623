"""The process's database work is counted per app and shown on ``/metrics`` only."""

from __future__ import annotations

from bot.app import App
from tests.conftest import bind_console, say, tenant_with_tokens


async def test_a_turn_is_counted_in_transactions_statements_and_writer_time(app: App) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    stats = app.deps.sessions.stats
    assert stats is not None
    await say(app, "warm up", update_key="u-0")
    before = (stats.transactions, stats.statements, stats.writes, stats.writer_hold_seconds)

    sink = await say(app, "hello", update_key="u-1")

    assert sink.deltas and sink.texts, "the turn was streamed and answered"
    transactions, statements, writes, held = (
        stats.transactions - before[0],
        stats.statements - before[1],
        stats.writes - before[2],
        stats.writer_hold_seconds - before[3],
    )
    # The claim with the reservation, the persist, the claim marked delivered; every write is
    # also a transaction (under load, each joins other turns' in a group commit).
    assert writes == 3
    assert transactions >= writes
    assert statements > transactions
    assert held > 0
    rendered = app.deps.metrics.render().decode()
    assert f"switchboard_db_transactions_total {float(stats.transactions)}" in rendered
    assert f"switchboard_db_statements_total {float(stats.statements)}" in rendered


async def test_each_app_counts_only_its_own_work(make_app: object) -> None:
    first: App = await make_app()  # type: ignore[operator]
    second: App = await make_app()  # type: ignore[operator]
    assert first.deps.sessions.stats is not second.deps.sessions.stats
    await tenant_with_tokens(first)
    await bind_console(first)
    assert second.deps.sessions.stats is not None
    seen = second.deps.sessions.stats.statements
    await say(first, "hello", update_key="u-1")
    assert second.deps.sessions.stats.statements == seen
