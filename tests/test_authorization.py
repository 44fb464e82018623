"""Writes need a write permission, and a linked chat is not moved by whoever holds another
tenant's invite code (issue 8, defect 7). Everything runs through the console pipeline."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.app import App
from storage.models import AuditLog, ChannelBinding, ContentItem, Invite
from storage.repositories.tenants import TenantRepository, hash_invite_code
from tests.conftest import admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer

GROUP: dict[str, Any] = {"scope_key": "group:42", "chat_key": "group:42", "is_private": False}


async def _audit(app: App, action: str) -> list[AuditLog]:
    async with app.deps.sessions() as session:
        query = select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)
        return list((await session.execute(query)).scalars())


async def _archived(app: App) -> bool:
    async with app.deps.sessions() as session:
        return bool((await session.execute(select(ContentItem.archived))).scalar_one())


async def _bound_to(app: App, scope_key: str) -> list[int]:
    async with app.deps.sessions() as session:
        query = select(ChannelBinding.tenant_id).where(ChannelBinding.scope_key == scope_key)
        return list((await session.execute(query)).scalars())


async def _used(app: App, code: str) -> bool:
    async with app.deps.sessions() as session:
        query = select(Invite.used_at).where(Invite.code_hash == hash_invite_code(code))
        return (await session.execute(query)).scalar_one() is not None


# -- /library archive ------------------------------------------------------------------------------


async def _tenant_with_one_item(app: App) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    await say(app, "write a poem")


async def test_a_viewer_cannot_archive_another_tenants_item(app: App) -> None:
    await _tenant_with_one_item(app)
    await admin(app, "admin", "add", "console:watcher", "viewer")
    sink = await say(app, "/library archive 1 --tenant acme", user="watcher", scope_key="x")
    assert sink.texts == ["Permission denied: /library archive --tenant needs the admin role."]
    assert await _archived(app) is False
    assert await _audit(app, "library.archive") == []
    # Reading with --tenant stays a viewer's right.
    got = await say(app, "/library get 1 --tenant acme", user="watcher", scope_key="x")
    assert got.texts[0].startswith("#1 [text]")


async def test_an_admin_archives_with_tenant_and_it_is_audited(app: App) -> None:
    await _tenant_with_one_item(app)
    await admin(app, "admin", "add", "console:boss", "admin")
    sink = await say(app, "/library archive 1 --tenant acme", user="boss", scope_key="x")
    assert sink.texts == ["Archived item 1."]
    assert await _archived(app) is True
    [row] = await _audit(app, "library.archive")
    assert (row.actor, row.target) == ("console:boss", "acme#1")
    assert (row.before, row.after) == ({"archived": False}, {"archived": True})


async def test_a_member_archives_in_their_own_chat_and_it_is_audited(app: App) -> None:
    await _tenant_with_one_item(app)
    sink = await say(app, "/library archive 1", user="ann")
    assert sink.texts == ["Archived item 1."]
    assert await _archived(app) is True
    [row] = await _audit(app, "library.archive")
    assert (row.actor, row.target) == ("console:ann", "acme#1")


# -- binding and rebinding -------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["start", "join"])
async def test_a_member_cannot_move_a_linked_group_to_another_tenant(
    app: App, llm: FakeLLMServer, verb: str
) -> None:
    code_a = await tenant_with_tokens(app, "ta")
    code_b = await tenant_with_tokens(app, "tb")
    await bind_console(app, "tb")
    llm.reply_text = "B's confidential roadmap."
    await say(app, "draft our roadmap", slug="tb")  # B's library item 1
    llm.reply_text = "A's harmless note."

    linked = await say(app, f"/{verb} {code_a}", user="ann", **GROUP)
    assert "now linked to Ta" in linked.texts[0]
    await say(app, "write a note", user="ann", **GROUP)  # A's library item 1

    refused = await say(app, f"/{verb} {code_b}", user="mallory", **GROUP)
    assert refused.texts == [
        "This group is already linked to Ta. Only a platform admin (admin role) can link it "
        "to another organisation; the invite code was not used."
    ]
    assert await _used(app, code_b) is False
    listing = await say(app, "/library", user="mallory", **GROUP)
    assert "A's harmless note." in listing.texts[0]
    assert "confidential" not in listing.texts[0]
    got = await say(app, "/library get 1", user="mallory", **GROUP)
    assert "A's harmless note." in got.texts[0]
    assert [r.after for r in await _audit(app, "chat.bind")] == [{"tenant": "ta"}]
    assert await _audit(app, "chat.rebind") == []


async def test_resending_a_code_of_the_same_tenant_says_already_linked(app: App) -> None:
    code = await tenant_with_tokens(app, "ta")
    await say(app, f"/start {code}", **GROUP)
    fresh = (await admin(app, "tenant", "invite", "ta")).data["invite_code"]

    again = await say(app, f"/start {code}", **GROUP)  # the code already used here
    assert again.texts == ["This group is already linked to Ta."]
    other = await say(app, f"/start {fresh}", **GROUP)
    assert other.texts == ["This group is already linked to Ta."]
    assert await _used(app, fresh) is False, "the fresh code is still good for another chat"
    assert len(await _audit(app, "chat.bind")) == 1


async def test_a_viewer_cannot_rebind_either(app: App) -> None:
    code_a = await tenant_with_tokens(app, "ta")
    code_b = await tenant_with_tokens(app, "tb")
    await admin(app, "admin", "add", "console:watcher", "viewer")
    await say(app, f"/start {code_a}", **GROUP)
    refused = await say(app, f"/start {code_b}", user="watcher", **GROUP)
    assert "already linked to Ta" in refused.texts[0]
    async with app.deps.sessions() as session:
        ta = await TenantRepository(session).get("ta")
    assert await _bound_to(app, "group:42") == [ta.id]
    assert await _used(app, code_b) is False


async def test_a_platform_admin_may_move_a_linked_chat_and_it_is_audited(app: App) -> None:
    code_a = await tenant_with_tokens(app, "ta")
    code_b = await tenant_with_tokens(app, "tb")
    await admin(app, "admin", "add", "console:boss", "admin")
    await say(app, f"/start {code_a}", user="ann", **GROUP)
    moved = await say(app, f"/start {code_b}", user="boss", **GROUP)
    assert "now linked to Tb" in moved.texts[0]
    assert "moved from Ta" in moved.texts[0]
    assert await _used(app, code_b) is True
    [bind] = await _audit(app, "chat.bind")
    assert (bind.actor, bind.target) == ("console:ann", "console:group:42")
    assert (bind.before, bind.after) == (None, {"tenant": "ta"})
    [rebind] = await _audit(app, "chat.rebind")
    assert (rebind.actor, rebind.target) == ("console:boss", "console:group:42")
    assert (rebind.before, rebind.after) == ({"tenant": "ta"}, {"tenant": "tb"})


async def test_an_unknown_code_in_a_linked_chat_is_still_invalid(app: App) -> None:
    code = await tenant_with_tokens(app, "ta")
    await say(app, f"/start {code}", **GROUP)
    sink = await say(app, "/start not-a-real-code", **GROUP)
    assert sink.texts == ["This invite code is not valid."]
