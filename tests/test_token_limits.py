"""Token amounts are bounded at the command boundary, and the balance update refuses to leave a
range that 64-bit integers hold with room to spare (issue 8, defect 6)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.app import App
from core.errors import ConflictError, NotFoundError, UsageError
from core.limits import MAX_BALANCE, MAX_TOKENS
from storage.models import LedgerEntry
from storage.repositories.ledger import LedgerRepository
from storage.repositories.tenants import TenantRepository
from tests.conftest import admin, tenant_with_tokens

INT64_MAX = 2**63 - 1


async def _ledger_rows(app: App) -> int:
    async with app.deps.sessions() as session:
        return int((await session.execute(select(func.count(LedgerEntry.id)))).scalar_one())


async def _post(app: App, tokens: int, slug: str = "acme") -> None:
    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(slug)
        await LedgerRepository(session).post(tenant.id, "adjustment", tokens, now=app.deps.clock())


def test_the_bounds_leave_room_below_64_bits() -> None:
    assert MAX_TOKENS <= MAX_BALANCE < INT64_MAX // 1000


@pytest.mark.parametrize(
    "amount", [str(INT64_MAX), str(10**23), str(MAX_TOKENS + 1), "1" + "0" * 400]
)
async def test_a_grant_beyond_the_maximum_is_a_usage_error_and_changes_nothing(
    app: App, amount: str
) -> None:
    await tenant_with_tokens(app, tokens=100)
    with pytest.raises(UsageError) as raised:
        await admin(app, "tokens", "grant", "acme", amount)
    message = raised.value.user_message
    assert f"must be from 1 to {MAX_TOKENS:,}" in message
    assert "Usage: /tokens grant SLUG N" in message
    assert len(message) < 300, "a huge number is not echoed back in full"
    assert (await admin(app, "tenant", "show", "acme")).data["token_balance"] == 100
    assert await _ledger_rows(app) == 1
    assert (await admin(app, "ledger", "verify")).data["ok"] is True


async def test_the_maximum_grant_itself_is_accepted(app: App) -> None:
    await tenant_with_tokens(app, tokens=0)
    result = await admin(app, "tokens", "grant", "acme", f"{MAX_TOKENS:_}")
    assert result.data["token_balance"] == MAX_TOKENS


async def test_ledger_refuses_a_balance_beyond_the_bound_and_writes_nothing(app: App) -> None:
    """Once stored as REAL 9.22e18 on SQLite (and `ledger verify` crashed on every tenant);
    a raw "bigint out of range" traceback on PostgreSQL."""
    await tenant_with_tokens(app, tokens=100)
    with pytest.raises(ConflictError) as raised:
        await _post(app, INT64_MAX)
    assert f"{MAX_BALANCE:,}" in raised.value.user_message
    assert "Nothing was changed" in raised.value.user_message
    assert (await admin(app, "tenant", "show", "acme")).data["token_balance"] == 100
    assert await _ledger_rows(app) == 1
    verified = await admin(app, "ledger", "verify")
    assert verified.data == {"ok": True, "tenants_checked": 1, "mismatches": []}


async def test_ledger_refuses_by_the_resulting_balance_not_the_entry_alone(app: App) -> None:
    await tenant_with_tokens(app, tokens=0)
    await _post(app, MAX_BALANCE - 10)
    await _post(app, 10)  # exactly at the bound: allowed
    with pytest.raises(ConflictError):
        await _post(app, 1)
    await _post(app, -2 * MAX_BALANCE)  # down to exactly -MAX_BALANCE: allowed
    with pytest.raises(ConflictError):
        await _post(app, -1)
    shown = await admin(app, "tenant", "show", "acme")
    assert shown.data["token_balance"] == -MAX_BALANCE
    assert await _ledger_rows(app) == 3
    assert (await admin(app, "ledger", "verify")).data["ok"] is True


async def test_ledger_post_for_an_unknown_tenant_is_not_found(app: App) -> None:
    async with app.deps.sessions.begin() as session:
        with pytest.raises(NotFoundError):
            await LedgerRepository(session).post(424242, "grant", 5, now=app.deps.clock())


@pytest.mark.parametrize("value", ["-100", "0", str(MAX_TOKENS + 1), "1.5", "many"])
async def test_max_output_tokens_is_bounded(app: App, value: str) -> None:
    with pytest.raises(UsageError) as raised:
        await admin(app, "assistant", "set", "general", "max_output_tokens", value)
    assert "max_output_tokens" in raised.value.user_message
    assert "Usage: /assistant set" in raised.value.user_message
    listed = await admin(app, "assistant", "list")
    assert {a["slug"]: a["max_output_tokens"] for a in listed.data}["general"] == 1024
