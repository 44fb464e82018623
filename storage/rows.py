"""Rows written by one prebuilt Core ``INSERT``, without the ORM's unit of work.

The turn's writes (its messages, library item, usage event and ledger entry) are plain inserts
of rows nothing reads back within the transaction. Through ``session.add`` and ``flush`` each
cost ~175 µs of CPU on the SQLite inline driver; as a Core insert built once per table and
executed with the row's values, ~60 µs (``bench/sqlite_driver_bench.py`` measures the driver
side). Call sites still build the model object, so a row reads the same either way.
"""

from __future__ import annotations

from functools import cache
from typing import Any, cast

from sqlalchemy import Insert, Table, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from storage.models import Base


@cache
def _insert_returning_id(table: Table) -> Insert:
    # Executed with a dict of values: SQLAlchemy compiles (and caches) one form per set of
    # keys, and applies column defaults (``created_at``, zero counters) to the keys left out.
    return insert(table).returning(table.c.id)


@cache
def _column_keys(table: Table) -> frozenset[str]:
    return frozenset(column.key for column in table.columns)


async def insert_row(session: AsyncSession, row: Base) -> int:
    """INSERT the column values set on the new model object ``row`` and set its ``id``.

    ``row`` is not added to the session: it is the value written (attributes left to column
    defaults stay unset on it), and the session never flushes or expires it. Only columns are
    written: set foreign keys by id, not through relationships.
    """
    table = cast(Table, row.__table__)
    columns = _column_keys(table)
    values: dict[str, Any] = {
        key: value for key, value in vars(row).items() if key in columns and key != "id"
    }
    row_id = int((await session.execute(_insert_returning_id(table), values)).scalar_one())
    row.id = row_id  # type: ignore[attr-defined]
    return row_id


def refresh_loaded(session: AsyncSession, model: type[Base], row_id: int, **values: Any) -> None:
    """Give the session's loaded ``model`` ``row_id`` (if any) the values a Core ``UPDATE`` just
    wrote (from its ``RETURNING``): unlike the ORM's, a Core update leaves loaded objects as
    they were, and a caller reading its tenant after posting to the ledger must see the new
    balance."""
    loaded = session.sync_session.identity_map.get(identity_key(model, row_id))
    if loaded is not None:
        for key, value in values.items():
            set_committed_value(loaded, key, value)
