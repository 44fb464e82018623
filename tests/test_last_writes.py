"""Rows every transaction shares are written last (storage.last_writes): the day's all-tenants
rollup row counts exactly the committed settlements, is written once per transaction as its
last statement, and no longer closes a deadlock between two transactions on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.app import App
from storage.db import Sessions
from storage.models import UsageDaily, UsageDailyGlobal
from storage.repositories.rollups import RollupRepository, UsageDelta
from tests.conftest import AppFactory

DAY = date(2026, 12, 4)
_Row = tuple[int, str]  # (assistant id, model): the all-tenants row's key on DAY
_SUMMED = ("calls", "input_tokens", "output_tokens", "charged_tokens", "cost_micros")


def _delta(tenant: int, assistant: int, model: str, tokens: int) -> UsageDelta:
    return UsageDelta(
        DAY, tenant, assistant, "openai", model, "USD", True,
        input_tokens=tokens, output_tokens=2 * tokens, charged_tokens=3 * tokens,
        cost_micros=7 * tokens, latency_ms=tokens,
    )  # fmt: skip


async def _global(session: AsyncSession) -> dict[_Row, tuple[int, ...]]:
    table = UsageDailyGlobal
    rows = await session.execute(
        select(table.assistant_id, table.model, *(getattr(table, f) for f in _SUMMED)).where(
            table.day == DAY
        )
    )
    return {(int(a), str(m)): tuple(int(v) for v in values) for a, m, *values in rows}


async def _per_tenant_summed(session: AsyncSession) -> dict[_Row, tuple[int, ...]]:
    """The all-tenants figures as the per-tenant rows add up to."""
    totals: dict[_Row, list[int]] = {}
    sums = (getattr(UsageDaily, f) for f in _SUMMED)
    rows = await session.execute(
        select(UsageDaily.assistant_id, UsageDaily.model, *sums).where(UsageDaily.day == DAY)
    )
    for assistant, model, *values in rows:
        row = totals.setdefault((int(assistant), str(model)), [0] * len(_SUMMED))
        for i, value in enumerate(values):
            row[i] += int(value)
    return {key: tuple(values) for key, values in totals.items()}


def _expected(deltas: list[UsageDelta]) -> Counter[tuple[_Row, str]]:
    counts: Counter[tuple[_Row, str]] = Counter()
    for d in deltas:
        values = d.values()
        for name in _SUMMED:
            counts[((d.assistant_id, d.model), name)] += values[name]
    return counts


def _as_counter(rows: dict[_Row, tuple[int, ...]]) -> Counter[tuple[_Row, str]]:
    counts: Counter[tuple[_Row, str]] = Counter()
    for row, values in rows.items():
        for name, value in zip(_SUMMED, values, strict=True):
            counts[(row, name)] = value
    return counts


@contextmanager
def _statements(engines: tuple[AsyncEngine, ...]) -> Iterator[list[str]]:
    seen: list[str] = []

    def log(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    for engine in engines:
        event.listen(engine.sync_engine, "before_cursor_execute", log)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine.sync_engine, "before_cursor_execute", log)


class _Undone(Exception):
    """A member's failure: its savepoint rolls back."""


# A member: its calls (tenant, assistant, model, tokens), whether it fails after recording
# them, and calls made in a savepoint of its own that fails (a nested rollback).
_calls = st.lists(
    st.tuples(
        st.integers(1, 4), st.integers(0, 2), st.sampled_from(["m-a", "m-b"]), st.integers(0, 500)
    ),
    max_size=4,
)
_members = st.lists(st.tuples(_calls, st.booleans(), _calls), min_size=1, max_size=5)


@pytest.fixture
async def app(make_app: AppFactory) -> App:
    made: App = await make_app()
    return made


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(members=_members, transaction_fails=st.booleans())
async def test_the_shared_row_counts_exactly_what_committed(
    app: App, members: list[tuple[list[Any], bool, list[Any]]], transaction_fails: bool
) -> None:
    """Members of one transaction in savepoints, as a group commit runs them: some fail, some
    undo a nested part; sometimes the whole transaction rolls back. The all-tenants row gains
    the committed calls exactly, and always equals the per-tenant rows summed."""
    sessions = app.deps.sessions
    async with sessions() as session:
        before = _as_counter(await _global(session))
    committed: list[UsageDelta] = []
    try:
        async with sessions.begin() as session:
            rollups = RollupRepository(session)
            kept: list[UsageDelta] = []
            for calls, fails, undone in members:
                mine = [_delta(*call) for call in calls]
                try:
                    async with session.begin_nested():
                        for delta in mine:
                            await rollups.record(delta)
                        try:
                            async with session.begin_nested():
                                for call in undone:
                                    await rollups.record(_delta(*call))
                                raise _Undone
                        except _Undone:
                            pass
                        if fails:
                            raise _Undone
                except _Undone:
                    continue
                kept += mine
            if transaction_fails:
                raise _Undone
        committed = kept
    except _Undone:
        assert transaction_fails
    async with sessions() as session:
        after = await _global(session)
        assert _as_counter(after) == before + _expected(committed)
        assert after == await _per_tenant_summed(session)


async def test_one_write_per_shared_row_as_the_transactions_last(app: App) -> None:
    """Five calls of three tenants on two models, each in its savepoint as a batch's members
    are: the all-tenants rows are written once each, in the order of their keys, after every
    per-tenant write."""
    sessions: Sessions = app.deps.sessions
    with _statements(sessions.engines) as seen:
        async with sessions.begin() as session:
            rollups = RollupRepository(session)
            for tenant, model in [(1, "m-b"), (2, "m-a"), (3, "m-b"), (1, "m-a"), (2, "m-b")]:
                async with session.begin_nested():
                    await rollups.record(_delta(tenant, 1, model, 10))
    writes = [s for s in seen if s.startswith("INSERT")]
    shared = [i for i, s in enumerate(writes) if "INTO usage_daily_global" in s]
    assert shared == [len(writes) - 2, len(writes) - 1], writes
    async with sessions() as session:
        rows = await _global(session)
    assert rows == {(1, "m-a"): (2, 20, 40, 60, 140), (1, "m-b"): (3, 30, 60, 90, 210)}


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"),
    reason="SQLite has one writer: its transactions never hold rows against each other",
)
async def test_two_transactions_on_other_tenants_no_longer_deadlock(app: App) -> None:
    """A records tenant 1, then tenant 2; B records tenant 2 in between and commits a little
    later. Had A taken the shared row with its first call, B would wait for it while holding
    tenant 2's rows, which A waits for next: a deadlock, one of them rolled back. Taken last,
    A just waits for B's commit."""
    sessions = app.deps.sessions
    async with sessions.begin() as session:  # the rows exist: both upserts update
        for tenant in (1, 2):
            await RollupRepository(session).record(_delta(tenant, 1, "m-a", 1))

    async def a() -> None:
        async with sessions.begin() as session:
            await RollupRepository(session).record(_delta(1, 1, "m-a", 10))
            await asyncio.sleep(0.3)  # B takes tenant 2's rows meanwhile
            await RollupRepository(session).record(_delta(2, 1, "m-a", 10))

    async def b() -> None:
        async with sessions.begin() as session:
            await asyncio.sleep(0.1)  # A holds tenant 1 (and, before, the shared row)
            await RollupRepository(session).record(_delta(2, 1, "m-a", 100))
            await asyncio.sleep(0.5)  # A asks for tenant 2's row meanwhile

    async with asyncio.timeout(20):
        await asyncio.gather(a(), b())
    async with sessions() as session:
        assert (await _global(session))[(1, "m-a")][1] == 1 + 1 + 10 + 10 + 100
