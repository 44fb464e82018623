"""Shared fixtures: a fresh database per test (SQLite, or PostgreSQL when TEST_DATABASE_URL is
set), the fake LLM server, and a fully wired :class:`bot.app.App` pointing at both."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from admin_commands.registry import Caller, CommandResult
from bot.app import App, build_app, prepare_database
from bot.settings import load_settings
from core.envelope import InboundMessage
from tests.fakes.llm_server import FakeLLMServer
from tests.sinks import RecordingSink

SHELL = Caller(channel="shell", user_id="admin", role="super_admin")


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A database nobody else uses: a temp SQLite file, or a fresh PostgreSQL database."""
    pg_url = os.environ.get("TEST_DATABASE_URL")
    if not pg_url:
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    name = f"sb_test_{uuid.uuid4().hex[:12]}"
    server = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
    async with server.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    async with server.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await server.dispose()


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLMServer]:
    server = FakeLLMServer()
    await server.start()
    yield server
    await server.stop()


AppFactory = Callable[..., Any]


@pytest.fixture
async def make_app(
    database_url: str, llm: FakeLLMServer, tmp_path: Path
) -> AsyncIterator[AppFactory]:
    """``await make_app(**env)`` → a migrated, seeded App; closed after the test."""
    apps: list[App] = []

    async def factory(clock: Callable[[], datetime] | None = None, **env: str) -> App:
        environ: dict[str, str] = {
            "DATABASE_URL": database_url,
            "OPENAI_BASE_URL": llm.base_url,
            "ANTHROPIC_BASE_URL": llm.anthropic_base_url,
            "DEFAULT_PROVIDER": "openai",
            "DEFAULT_MODEL": "gpt-4o-mini",
            "MEDIA_DIR": str(tmp_path / "media"),
            "RATE_LIMIT_PER_MINUTE": "0",
            "PROVIDER_TIMEOUT_SECONDS": "2",
            # Bursts of turns on a small balance queue for each other's reservations.
            "RESERVATION_WAIT_SECONDS": "30",
            # A service started by a test listens on a free port, never the default 8080.
            "HTTP_PORT": "0",
        }
        environ.update({k.upper(): v for k, v in env.items()})
        kwargs: dict[str, Any] = {"clock": clock} if clock else {}
        app = build_app(load_settings(environ), **kwargs)
        await prepare_database(app)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.aclose()


@pytest.fixture
async def app(make_app: AppFactory) -> App:
    return await make_app()  # type: ignore[no-any-return]


async def admin(app: App, *words: str, caller: Caller = SHELL) -> CommandResult:
    """Run a command as the shell's super admin (or ``caller``)."""
    return await app.registry.dispatch(list(words), caller, app.deps)


async def tenant_with_tokens(app: App, slug: str = "acme", tokens: int = 100_000) -> str:
    """Create a tenant, grant tokens, and return its invite code."""
    created = await admin(app, "tenant", "create", slug, "--name", slug.title())
    if tokens:
        await admin(app, "tokens", "grant", slug, str(tokens))
    return str(created.data["invite_code"])


def console_message(
    text: str, *, slug: str = "acme", user: str = "u1", update_key: str | None = None, **extra: Any
) -> InboundMessage:
    fields: Mapping[str, Any] = {
        "channel": "console",
        "scope_key": f"tenant:{slug}",
        "chat_key": f"{slug}:{user}",
        "user_id": user,
        "user_name": user,
        "text": text,
        "received_at": datetime.now(UTC),
        "update_key": update_key,
        **extra,
    }
    return InboundMessage(**fields)


async def bind_console(app: App, slug: str = "acme") -> None:
    from storage.repositories.tenants import BindingRepository, TenantRepository

    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(slug)
        await BindingRepository(session).bind(tenant, "console", f"tenant:{slug}")


async def say(app: App, text: str, **kwargs: Any) -> RecordingSink:
    sink = RecordingSink()
    await app.pipeline.handle(console_message(text, **kwargs), sink)
    return sink
