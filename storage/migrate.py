"""Alembic upgrade/downgrade driven programmatically on the service's own async engine."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate to ``revision``; a database already there is left alone, quietly (every CLI
    call upgrades first, and should neither pay for Alembic's run nor print its log lines)."""

    def _run(connection: Connection) -> None:
        config = alembic_config(connection)
        target = (
            ScriptDirectory.from_config(config).get_current_head()
            if revision == "head"
            else revision
        )
        if _quiet_revision(connection) == target:
            return
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


def _quiet_revision(connection: Connection) -> str | None:
    """The database's revision, without Alembic announcing its context at INFO level."""
    from alembic.runtime.migration import MigrationContext

    announcer = logging.getLogger("alembic.runtime.migration")
    level = announcer.level
    announcer.setLevel(logging.WARNING)
    try:
        return MigrationContext.configure(connection).get_current_revision()
    finally:
        announcer.setLevel(level)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    def _run(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def _read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_read)


def head_revision() -> str | None:
    """The newest revision this code ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
