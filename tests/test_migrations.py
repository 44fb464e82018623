"""Alembic migrations run forward and back on the test database (SQLite or PostgreSQL)."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from storage import migrate
from storage.db import create_engine
from storage.models import Base


def _head() -> str | None:
    return ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()


async def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == _head()
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert set(Base.metadata.tables) <= tables

        await migrate.downgrade(engine, "base")
        async with engine.connect() as conn:
            left = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert not (set(Base.metadata.tables) & left)

        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == _head()
    finally:
        await engine.dispose()


async def test_models_match_migrations(database_url: str) -> None:
    """Autogenerate finds nothing to add: the migration chain matches the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
        assert diff == []
    finally:
        await engine.dispose()
