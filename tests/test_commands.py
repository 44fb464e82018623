"""Command registry: permissions, usage lines, help visibility, audit log."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from admin_commands.registry import Caller
from bot.app import App
from core.errors import PermissionDenied, SwitchboardError, UsageError
from storage.models import AuditLog, Invite
from tests.conftest import admin, bind_console, say, tenant_with_tokens


def _admin_caller(role: str | None, user: str = "99") -> Caller:
    return Caller(channel="telegram", user_id=user, role=role)


async def test_tenant_create_returns_invite_and_stores_only_hash(app: App) -> None:
    app.deps.bot_usernames["telegram"] = "acme_bot"
    result = await admin(
        app, "tenant", "create", "acme", "--name", "Acme Inc", "--email", "ops@acme.test"
    )
    code = result.data["invite_code"]
    assert result.data["slug"] == "acme"
    assert result.data["telegram_link"] == f"https://t.me/acme_bot?start={code}"
    assert len(code) >= 22, "at least 128 bits of randomness"
    async with app.deps.sessions() as session:
        invite = (await session.execute(select(Invite))).scalar_one()
    assert code not in invite.code_hash and len(invite.code_hash) == 64


@pytest.mark.parametrize(
    "words, fragment",
    [
        (["tenant", "create", "acme"], "--name"),
        (["tenant", "create", "Bad Slug!", "--name", "x"], "invalid slug"),
        (["tokens", "grant", "acme", "lots"], "whole number"),
        (["tokens", "grant", "acme", "-5"], "Usage: /tokens grant"),
        (["tenant", "frobnicate"], "/tenant create"),
        (["admin", "add", "nobody", "admin"], "CHANNEL:ID"),
    ],
)
async def test_wrong_arguments_answer_the_usage_line(
    app: App, words: list[str], fragment: str
) -> None:
    await tenant_with_tokens(app)
    with pytest.raises(UsageError) as raised:
        await admin(app, *words)
    assert fragment in raised.value.user_message
    assert "Usage:" in raised.value.user_message


async def test_bad_input_changes_nothing(app: App) -> None:
    await tenant_with_tokens(app, tokens=100)
    with pytest.raises(UsageError):
        await admin(app, "tokens", "grant", "acme", "0")
    shown = await admin(app, "tenant", "show", "acme")
    assert shown.data["token_balance"] == 100


@pytest.mark.parametrize(
    "role, allowed",
    [
        (None, False),
        ("viewer", False),
        ("editor", False),
        ("admin", True),
        ("super_admin", True),
    ],
)
async def test_roles_gate_tenant_creation(app: App, role: str | None, allowed: bool) -> None:
    caller = _admin_caller(role)
    if allowed:
        result = await admin(app, "tenant", "create", "acme", "--name", "A", caller=caller)
        assert result.data["slug"] == "acme"
        return
    with pytest.raises(PermissionDenied) as raised:
        await admin(app, "tenant", "create", "acme", "--name", "A", caller=caller)
    assert "needs the admin role" in raised.value.user_message


async def test_only_super_admin_manages_admins(app: App) -> None:
    with pytest.raises(PermissionDenied) as raised:
        await admin(app, "admin", "add", "telegram:5", "viewer", caller=_admin_caller("admin"))
    assert "super_admin" in raised.value.user_message
    await admin(app, "admin", "add", "telegram:5", "viewer")
    listed = await admin(app, "admin", "list")
    assert {"identity": "telegram:5", "role": "viewer"} in listed.data
    await admin(app, "admin", "remove", "telegram:5")
    assert (await admin(app, "admin", "list")).data == []


async def test_help_shows_only_what_the_caller_may_run(app: App) -> None:
    member_help = await admin(app, "help", caller=Caller(channel="telegram", user_id="1"))
    viewer_help = await admin(app, "help", caller=_admin_caller("viewer"))
    super_help = await admin(app, "help")
    names = lambda r: {c["command"] for c in r.data}  # noqa: E731
    assert "tenant create" not in names(member_help)
    assert "tenant list" in names(viewer_help) and "tenant create" not in names(viewer_help)
    assert {"tenant create", "admin add", "ledger verify"} <= names(super_help)


async def test_an_unknown_command_says_so(app: App) -> None:
    with pytest.raises(SwitchboardError) as shell:
        await admin(app, "frobnicate")
    assert shell.value.user_message == (
        "Unknown command 'frobnicate'. Run `switchboard admin help` for the commands you can run."
    )
    await tenant_with_tokens(app)
    await bind_console(app)
    sink = await say(app, "/foo")
    assert sink.texts == ["Unknown command 'foo'. Send /help for the commands you can run."]
    assert (await admin(app)).text.startswith("Commands:")  # nothing typed: the help


async def test_admin_actions_are_audited(app: App) -> None:
    await tenant_with_tokens(app, tokens=500)
    await admin(app, "tenant", "suspend", "acme")
    async with app.deps.sessions() as session:
        rows = list((await session.execute(select(AuditLog).order_by(AuditLog.id))).scalars())
    actions = [(r.action, r.target, r.actor) for r in rows]
    assert ("tenant.create", "acme", "shell:admin") in actions
    assert ("tokens.grant", "acme", "shell:admin") in actions
    suspend = next(r for r in rows if r.action == "tenant.suspend")
    assert suspend.before == {"status": "trial"} and suspend.after == {"status": "suspended"}


async def test_superadmins_setting_bootstraps_roles(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app(SUPERADMINS="telegram:777,slack:T1/U1")
    listed = await admin(app, "admin", "list")
    assert {"identity": "telegram:777", "role": "super_admin"} in listed.data
    assert {"identity": "slack:T1/U1", "role": "super_admin"} in listed.data


async def test_member_library_and_usage(app: App, llm) -> None:  # type: ignore[no-untyped-def]
    llm.reply_text = "A poem about the sea."
    await tenant_with_tokens(app)
    await bind_console(app)
    await say(app, "write a poem")
    listing = await say(app, "/library")
    assert "A poem about the sea." in listing.texts[0]
    found = await say(app, "/library sea")
    assert "#1" in found.texts[0]
    assert "Nothing found" in (await say(app, "/library mountains")).texts[0]
    got = await say(app, "/library get 1")
    assert "A poem about the sea." in got.texts[0]
    await say(app, "/library archive 1")
    assert "Nothing in the library" in (await say(app, "/library")).texts[0]
    assert "No library item" in (await say(app, "/library get 999")).texts[0]
    usage = await say(app, "/usage")
    assert "tokens left" in usage.texts[0]


async def test_library_is_tenant_scoped(app: App, llm) -> None:  # type: ignore[no-untyped-def]
    await tenant_with_tokens(app, "acme")
    await tenant_with_tokens(app, "globex")
    await bind_console(app, "acme")
    await bind_console(app, "globex")
    await say(app, "secret plan", slug="acme")
    other = await say(app, "/library get 1", slug="globex")
    assert "No library item" in other.texts[0]


async def test_every_command_answers_wrong_arguments_with_its_generated_usage(app: App) -> None:
    """Through the console pipeline, as a super admin in a bound chat, for every command."""
    await tenant_with_tokens(app)
    await bind_console(app)
    await admin(app, "admin", "add", "console:boss", "super_admin")
    commands = list(app.registry)
    assert len(commands) > 20
    for command in commands:
        sink = await say(app, f"/{command.name} --no-such-option", user="boss")
        assert sink.texts, command.name
        assert sink.texts[-1].splitlines()[-1] == f"Usage: {command.usage}", command.name
        assert command.usage.startswith(f"/{command.name}")


def test_usage_lines_come_from_the_parser(app: App) -> None:
    by_name = {c.name: c for c in app.registry}
    assert by_name["tenant create"].usage == "/tenant create --name NAME [--email EMAIL] SLUG"
    assert by_name["tokens grant"].usage == "/tokens grant SLUG N [REASON ...]"
    assert by_name["library get"].usage == "/library get [--tenant TENANT] ID"
