"""States and kinds are named once (storage.states) and hold to the schema and the code.

mypy refuses a misspelt state wherever a typed row is compared or assigned; what it cannot see
are SQL expressions (``Payment.status == "payed"`` builds a query from anything) and rows built
with keyword arguments. The source scan here covers those: every string the code compares
with, filters on or writes into a state column is one of that column's values.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import String, func, inspect, select

from bot.app import App
from storage import migrate
from storage.db import create_engine
from storage.models import Base, LedgerEntry, Tenant
from storage.repositories.ledger import LedgerRepository
from storage.repositories.tenants import TenantRepository
from storage.states import COLUMNS
from tests.conftest import tenant_with_tokens

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "bot", "handlers", "assistants", "storage", "admin_commands", "billing")

#: (model class name, attribute) → the values its column may hold.
ALLOWED: dict[tuple[str, str], tuple[str, ...]] = {
    (mapper.class_.__name__, column): values
    for mapper in Base.registry.mappers
    for (table, column), values in COLUMNS.items()
    if mapper.class_.__tablename__ == table
}


def test_every_list_names_distinct_lowercase_words() -> None:
    for key, values in COLUMNS.items():
        assert values, key
        assert len(set(values)) == len(values), key
        for value in values:
            assert re.fullmatch(r"[a-z][a-z_]*", value), (key, value)


def test_every_list_belongs_to_a_model_column_that_holds_its_longest_value() -> None:
    assert len(ALLOWED) == len(COLUMNS)
    for (table, column), values in COLUMNS.items():
        type_ = Base.metadata.tables[table].c[column].type
        assert isinstance(type_, String) and type_.length is not None, (table, column)
        assert max(map(len, values)) <= type_.length, (table, column)


def test_the_column_defaults_are_allowed_values() -> None:
    for (table, column), values in COLUMNS.items():
        col = Base.metadata.tables[table].c[column]
        if col.default is not None:
            assert col.default.arg in values, (table, column)  # type: ignore[attr-defined]
        if col.server_default is not None:
            assert col.server_default.arg in values, (table, column)  # type: ignore[attr-defined]


async def test_the_migrated_columns_hold_every_value(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            lengths = await conn.run_sync(
                lambda c: {
                    (table, col["name"]): getattr(col["type"], "length", None)
                    for table in {t for t, _ in COLUMNS}
                    for col in inspect(c).get_columns(table)
                }
            )
    finally:
        await engine.dispose()
    for key, values in COLUMNS.items():
        length = lengths[key]
        assert length is not None and max(map(len, values)) <= length, key


def _model_attribute(node: ast.expr) -> tuple[str, str] | None:
    """``Payment.status`` (also inside ``Payment.status + ""``) → ("Payment", "status")."""
    while isinstance(node, ast.BinOp):
        node = node.left
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        key = (node.value.id, node.attr)
        return key if key in ALLOWED else None
    return None


def _strings(node: ast.expr) -> Iterator[str]:
    """The string constants of ``"x"`` or ``("x", "y")``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for item in node.elts:
            yield from _strings(item)


def _updated_model(call: ast.Call) -> str | None:
    """The model of ``update(Model).where(…).values(…)``, walking down the chain."""
    node: ast.expr = call.func
    while True:
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id == "update" and node.args:
                first = node.args[0]
                return first.id if isinstance(first, ast.Name) else None
            node = node.func
        elif isinstance(node, ast.Attribute):
            node = node.value
        else:
            return None


def state_literals(source: str) -> Iterator[tuple[tuple[str, str], str, int]]:
    """Every (column, string, line) the code compares a state column with or writes into it."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            key = _model_attribute(node.left)
            if key is not None:
                for right in node.comparators:
                    yield from ((key, s, node.lineno) for s in _strings(right))
        elif isinstance(node, ast.Call):
            func_ = node.func
            if isinstance(func_, ast.Attribute) and func_.attr == "in_":
                key = _model_attribute(func_.value)
                if key is not None:
                    yield from ((key, s, node.lineno) for a in node.args for s in _strings(a))
            model = func_.id if isinstance(func_, ast.Name) else None
            if isinstance(func_, ast.Attribute) and func_.attr == "values":
                model = _updated_model(node)
            for keyword in node.keywords:
                key = (model or "", keyword.arg or "")
                if key in ALLOWED:
                    yield from ((key, s, node.lineno) for s in _strings(keyword.value))


def test_the_scan_finds_a_misspelt_state() -> None:
    source = (
        'select(Payment).where(Payment.status == "payed")\n'
        'update(Invoice).where(Invoice.id == 1).values(status="send")\n'
        'Subscription(status="cancelled")\n'
        'UsageEvent.status.in_(("settled", "faild"))\n'
    )
    wrong = {(key, s) for key, s, _ in state_literals(source) if s not in ALLOWED[key]}
    assert wrong == {
        (("Payment", "status"), "payed"),
        (("Invoice", "status"), "send"),
        (("Subscription", "status"), "cancelled"),
        (("UsageEvent", "status"), "faild"),
    }


def test_every_state_the_code_names_is_an_allowed_value() -> None:
    seen = 0
    wrong = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for key, value, line in state_literals(path.read_text(encoding="utf-8")):
                seen += 1
                if value not in ALLOWED[key]:
                    wrong.append(f"{path.relative_to(ROOT)}:{line}: {key[0]}.{key[1]} {value!r}")
    assert wrong == []
    assert seen >= 30  # the scan really reads the queries and rows


async def test_a_ledger_kind_outside_the_list_is_refused_and_changes_nothing(app: App) -> None:
    await tenant_with_tokens(app, tokens=100)
    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get("acme")
        with pytest.raises(ValueError, match="unknown ledger kind 'bonus'"):
            await LedgerRepository(session).post(
                tenant.id,
                "bonus",  # type: ignore[arg-type]
                5,
                now=app.deps.clock(),
            )
    async with app.deps.sessions() as session:
        balance = (await session.execute(select(Tenant.token_balance))).scalar_one()
        entries = (await session.execute(select(func.count(LedgerEntry.id)))).scalar_one()
    assert (balance, entries) == (100, 1)
