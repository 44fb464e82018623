"""``/audit``: who did what to which tenant, with before/after; filtered by tenant and actor."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from admin_commands.registry import Caller
from bot.app import App
from core.errors import NotFoundError, PermissionDenied, UsageError
from storage import migrate
from storage.db import create_engine
from storage.models import AuditLog
from tests.conftest import admin, bind_console, say, tenant_with_tokens

BOSS = Caller(channel="telegram", user_id="111", role="admin")
OTHER = Caller(channel="slack", user_id="T1/U2", role="super_admin")


@pytest.fixture
async def history(app: App) -> App:
    """Actions by three actors on two tenants, through the real commands."""
    await tenant_with_tokens(app, "acme", tokens=0)
    await tenant_with_tokens(app, "beta", tokens=0)
    await admin(app, "tokens", "grant", "acme", "1000", "welcome", "pack", caller=BOSS)
    await admin(app, "tenant", "suspend", "beta", caller=OTHER)
    await admin(app, "assistant", "disable", "analyst", "--tenant", "acme", caller=OTHER)
    await bind_console(app, "acme")
    await say(app, "write something", slug="acme", user="ann")
    await say(app, "/library archive 1", slug="acme", user="ann")
    return app


async def test_audit_shows_who_did_what_to_which_tenant(history: App) -> None:
    everything = (await admin(history, "audit")).data
    assert [e["action"] for e in everything] == [
        "library.archive",
        "assistant.disable",
        "tenant.suspend",
        "tokens.grant",
        "tenant.create",
        "tenant.create",
    ], "newest first"

    acme = (await admin(history, "audit", "acme")).data
    assert [(e["actor"], e["action"], e["target"]) for e in acme] == [
        ("console:ann", "library.archive", "acme#1"),
        ("slack:T1/U2", "assistant.disable", "analyst@acme"),
        ("telegram:111", "tokens.grant", "acme"),
        ("shell:admin", "tenant.create", "acme"),
    ]
    assert all(e["tenant"] == "acme" for e in acme)
    grant = acme[2]
    assert grant["before"] == {"token_balance": 0}
    assert grant["after"] == {"token_balance": 1000, "reason": "welcome pack"}
    assert acme[1]["before"] == {"enabled": None} and acme[1]["after"] == {"enabled": False}

    result = await admin(history, "audit", "acme", "--actor", "telegram:111")
    [line] = result.text.splitlines()
    assert line.endswith(
        'telegram:111 tokens.grant acme: {"token_balance": 0} → '
        '{"reason": "welcome pack", "token_balance": 1000}'
    )
    beta = (await admin(history, "audit", "--actor", "slack:T1/U2", "--limit", "1")).data
    assert [(e["action"], e["tenant"]) for e in beta] == [("assistant.disable", "acme")]
    assert (await admin(history, "audit", "--actor", "telegram:999")).text == "No audit entries."


async def test_bad_filters_are_refused(history: App) -> None:
    for words in (["--limit", "0"], ["--limit", "201"], ["--actor", "two words"], ["Not A Slug"]):
        with pytest.raises(UsageError) as refused:
            await admin(history, "audit", *words)
        assert "Usage: /audit [--actor ACTOR] [--limit N] [SLUG]" in refused.value.user_message
    with pytest.raises(NotFoundError):
        await admin(history, "audit", "nosuch")


@pytest.mark.parametrize("role", ["viewer", "editor"])
async def test_audit_needs_the_admin_role(history: App, role: str) -> None:
    caller = Caller(channel="telegram", user_id="7", role=role)
    with pytest.raises(PermissionDenied) as refused:
        await admin(history, "audit", caller=caller)
    assert refused.value.user_message == "Permission denied: /audit needs the admin role."
    assert (await admin(history, "audit", "--limit", "1", caller=BOSS)).data


async def test_the_migration_gives_earlier_entries_their_tenant(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine, "0004")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO tenants (id, slug, name, status, plan, billing_currency, "
                    "vat_rate_ppm, token_balance, tokens_reserved, created_at, library_seq) "
                    "VALUES (7, 'acme', 'Acme', 'trial', 'prepaid', 'EUR', 0, 0, 0, :at, 0)"
                ),
                {"at": datetime(2026, 1, 1, tzinfo=UTC)},
            )
            for action, target, after in (
                ("tokens.grant", "acme", None),
                ("library.archive", "acme#3", None),
                ("assistant.enable", "general@acme", None),
                ("chat.bind", "telegram:5", '{"tenant": "acme"}'),
                ("assistant.set", "acme", None),  # an assistant that shares the name
                ("admin.add", "telegram:5", None),
            ):
                await conn.execute(
                    text(
                        "INSERT INTO audit_log (actor, action, target, after, created_at) "
                        "VALUES ('shell:admin', :action, :target, :after, :at)"
                    ),
                    {
                        "action": action,
                        "target": target,
                        "after": after,
                        "at": datetime(2026, 1, 2, tzinfo=UTC),
                    },
                )
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(AuditLog.action, AuditLog.tenant_id).order_by(AuditLog.id)
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            ("tokens.grant", 7),
            ("library.archive", 7),
            ("assistant.enable", 7),
            ("chat.bind", 7),
            ("assistant.set", None),
            ("admin.add", None),
        ]
    finally:
        await engine.dispose()
