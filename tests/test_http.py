"""The HTTP server's own endpoints: ``/metrics`` behind ``METRICS_TOKEN``, and ``/healthz``
answering within 2 s whatever the database does. Real server on 127.0.0.1, real database."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy.engine import make_url

from bot.http import build_web_app
from bot.service import ServiceRunner
from handlers.deps import Deps
from storage.db import create_engine, create_session_factory
from tests.conftest import AppFactory

TOKEN = "m3trics-t0ken"
#: What a load balancer allows a health probe; the endpoint must answer well within it.
DEADLINE = 2.0
ON_POSTGRES = bool(os.environ.get("TEST_DATABASE_URL"))


@asynccontextmanager
async def serving(web_app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def service(make_app: AppFactory, **env: str) -> AsyncIterator[str]:
    """``switchboard run``'s HTTP server (no channel), built from ``env``."""
    app = await make_app(HTTP_PORT="0", **env)
    runner = ServiceRunner(app, [])
    await runner.start()
    try:
        yield f"http://127.0.0.1:{runner.port}"
    finally:
        await runner.stop()


async def get(url: str, **headers: str) -> tuple[int, str, float]:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status, await resp.text(), time.monotonic() - started


# -- /metrics --------------------------------------------------------------------------------------


async def test_metrics_need_the_bearer_token_when_one_is_set(make_app: AppFactory) -> None:
    async with service(make_app, METRICS_TOKEN=TOKEN) as base:
        refused = [
            await get(base + "/metrics"),
            await get(base + "/metrics", Authorization="Bearer wrong-token"),
            await get(base + "/metrics", Authorization=f"Bearer {TOKEN}x"),
            await get(base + "/metrics", Authorization=f"Basic {TOKEN}"),
            await get(base + "/metrics", Authorization=TOKEN),
        ]
        allowed = [
            await get(base + "/metrics", Authorization=f"Bearer {TOKEN}"),
            await get(base + "/metrics", Authorization=f"bearer {TOKEN}"),
        ]
        health = await get(base + "/healthz")

    assert [status for status, _, _ in refused] == [401] * len(refused)
    assert not any("switchboard_" in body for _, body, _ in refused)
    assert [status for status, _, _ in allowed] == [200, 200]
    assert all("switchboard_turns" in body for _, body, _ in allowed)
    assert health[0] == 200, "/healthz needs no token"


async def test_metrics_are_open_without_a_token(make_app: AppFactory) -> None:
    async with service(make_app) as base:
        status, body, _ = await get(base + "/metrics")
    assert status == 200 and "switchboard_turns" in body


# -- /healthz --------------------------------------------------------------------------------------


@pytest.mark.skipif(ON_POSTGRES, reason="a SQLite file lock; the pool test covers PostgreSQL")
async def test_healthz_answers_503_in_time_while_sqlite_is_locked(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Another connection holding ``BEGIN EXCLUSIVE`` keeps the check's ``BEGIN`` waiting for
    the 30 s busy timeout; the endpoint answers 503 in time, and 200 once the lock is gone."""
    app = await make_app()
    path = make_url(app.settings.database_url).database
    assert path
    async with serving(build_web_app(app.deps)) as base:
        assert (await get(base + "/healthz"))[0] == 200
        locker = sqlite3.connect(path, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            locked = [await get(base + "/healthz") for _ in range(2)]
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        recovered = await get(base + "/healthz")

    assert [status for status, _, _ in locked] == [503, 503]
    assert all(elapsed < DEADLINE for _, _, elapsed in locked), locked
    assert '"database": "unreachable"' in locked[0][1]
    assert recovered[0] == 200
    assert not [r for r in caplog.records if r.exc_info]


async def test_healthz_answers_503_in_time_when_no_connection_is_free(
    make_app: AppFactory, database_url: str
) -> None:
    """Every pooled connection busy (here: the only one) keeps the check waiting for the pool
    timeout; the endpoint still answers in time. Runs on SQLite and PostgreSQL alike."""
    app = await make_app()
    engine = create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=30)
    deps: Deps = replace(app.deps, sessions=create_session_factory(engine))
    try:
        async with serving(build_web_app(deps)) as base:
            assert (await get(base + "/healthz"))[0] == 200
            async with engine.connect():
                status, _, elapsed = await get(base + "/healthz")
            recovered = await get(base + "/healthz")
    finally:
        await engine.dispose()

    assert status == 503 and elapsed < DEADLINE
    assert recovered[0] == 200


async def test_healthz_reports_a_database_that_is_gone(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A check that fails (rather than hangs) is a 503 at once, logged in one line that names
    the error and not the database URL."""
    app = await make_app()
    broken = create_engine("sqlite+aiosqlite:////nonexistent-dir/switchboard.db")
    deps: Deps = replace(app.deps, sessions=create_session_factory(broken))
    caplog.set_level(logging.WARNING)
    try:
        async with serving(build_web_app(deps)) as base:
            status, body, elapsed = await get(base + "/healthz")
    finally:
        await broken.dispose()
    assert status == 503 and elapsed < DEADLINE and "unreachable" in body
    [line] = [r.getMessage() for r in caplog.records if "health check" in r.getMessage()]
    assert line == "health check failed: OperationalError"
    assert not [r for r in caplog.records if r.exc_info]
