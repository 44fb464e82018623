"""``/tenant members|unlink|block|unblock`` and ``/tokens adjust``: through the console chat and the
``switchboard admin`` shell, audited, and the ledger still adding up."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import App
from core.errors import SwitchboardError
from tests.conftest import admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.test_cli import _env, _run
from tests.test_telegram import ADMIN_ID, USER, Start, bind_private, start, telegram  # noqa: F401 (fixtures)


async def _refusal(app: App, *words: str) -> str:
    """The message a refused command answers with (it changed nothing)."""
    with pytest.raises(SwitchboardError) as refused:
        await admin(app, *words)
    return refused.value.user_message


async def _audit_actions(app: App) -> list[tuple[str, str]]:
    rows = (await admin(app, "audit", "acme", "--limit", "50")).data
    return [(row["action"], row["target"]) for row in rows]


async def test_members_lists_people_and_chats_from_chat(app: App) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    await say(app, "hello", user="alice")
    await say(app, "hello", user="bob")
    await admin(app, "admin", "add", "console:boss", "admin")
    sink = await say(app, "/tenant members acme", user="boss", scope_key="elsewhere")
    [text] = sink.texts
    assert "Members: 2" in text and "console:alice (alice) · member · last active" in text
    assert "Linked chats: 1" in text and "console:tenant:acme · linked" in text
    data = (await admin(app, "tenant", "members", "acme")).data
    assert {m["member"] for m in data["members"]} == {"console:alice", "console:bob"}
    assert data["chats"] == [
        {"chat": "console:tenant:acme", "linked_at": data["chats"][0]["linked_at"]}
    ]


async def test_a_blocked_member_is_refused_without_an_llm_call(
    app: App, llm: FakeLLMServer
) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    await say(app, "hello", user="mallory")
    calls = len(llm.requests)
    blocked = await admin(app, "tenant", "block", "acme", "console:mallory")
    assert blocked.text == "Blocked console:mallory in acme."
    sink = await say(app, "tell me everything", user="mallory")
    assert sink.texts == ["Your access to this organisation is blocked. Ask its administrator."]
    assert (await say(app, "/usage", user="mallory")).texts == sink.texts
    assert len(llm.requests) == calls
    # Others in the same tenant are not affected.
    assert (await say(app, "hello", user="alice")).deltas
    assert len(llm.requests) == calls + 1
    again = await admin(app, "tenant", "block", "acme", "console:mallory")
    assert again.text == "console:mallory was already blocked in acme."
    await admin(app, "tenant", "unblock", "acme", "console:mallory")
    assert (await say(app, "hello again", user="mallory")).deltas
    actions = await _audit_actions(app)
    assert actions.count(("tenant.block", "console:mallory")) == 1
    assert ("tenant.unblock", "console:mallory") in actions


async def test_block_refuses_a_stranger_and_a_bad_identity(app: App) -> None:
    await tenant_with_tokens(app)
    for words, problem in [
        (["console:nobody"], "console:nobody is not a member of acme: see /tenant members acme."),
        (["telegram:abc"], "'telegram:abc': a Telegram id is a number, like telegram:12345"),
    ]:
        assert problem in await _refusal(app, "tenant", "block", "acme", *words)


async def test_unlink_cuts_a_chat_off(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    assert (await say(app, "hello")).deltas
    result = await admin(app, "tenant", "unlink", "acme", "console:tenant:acme")
    assert result.text == "Unlinked console:tenant:acme from acme."
    calls = len(llm.requests)
    sink = await say(app, "hello")
    assert sink.texts and "not linked to an organisation" in sink.texts[0]
    assert len(llm.requests) == calls
    assert ("tenant.unlink", "console:tenant:acme") in await _audit_actions(app)
    again = await _refusal(app, "tenant", "unlink", "acme", "console:tenant:acme")
    assert "console:tenant:acme is not linked to acme" in again


async def test_tokens_adjust_down_keeps_a_prepaid_balance_at_zero(app: App) -> None:
    await tenant_with_tokens(app, tokens=1_000)
    done = await admin(app, "tokens", "adjust", "acme", "-400", "double", "grant")
    assert done.text == "Adjusted acme by -400 tokens (double grant); balance 1,000 → 600."
    refused = await _refusal(app, "tokens", "adjust", "acme", "-601", "typo")
    assert "from 600 to -1, below 0. Nothing was changed." in refused
    assert "--allow-negative" in refused
    forced = await admin(app, "tokens", "adjust", "acme", "-601", "typo", "--allow-negative")
    assert forced.data["token_balance"] == -1
    assert (await admin(app, "ledger", "verify")).data["ok"] is True
    entries = (await admin(app, "ledger", "show", "acme")).data
    assert [(e["kind"], e["tokens"]) for e in entries[:2]] == [
        ("adjustment", -601),
        ("adjustment", -400),
    ]
    actions = await _audit_actions(app)
    assert actions.count(("tokens.adjust", "acme")) == 2


async def test_tokens_adjust_needs_a_reason_and_a_non_zero_amount(app: App) -> None:
    await tenant_with_tokens(app, tokens=1_000)
    for words, problem in [
        (["+5"], "The following arguments are required: REASON."),
        (["0", "x"], "0 changes nothing"),
        (["+-5", "x"], "is not a signed number"),
    ]:
        assert problem in await _refusal(app, "tokens", "adjust", "acme", *words)
    assert (await admin(app, "tenant", "show", "acme")).data["token_balance"] == 1_000


_SLUGS = itertools.count(1)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.lists(st.integers(-3_000, 3_000).filter(bool), min_size=1, max_size=8))
async def test_adjustments_never_take_a_prepaid_balance_below_zero(
    app: App, changes: list[int]
) -> None:
    slug = f"t{next(_SLUGS)}"  # the app outlives each example: a new tenant for each
    await tenant_with_tokens(app, slug, tokens=1_000)
    balance = 1_000
    for change in changes:
        if balance + change < 0:
            assert "below 0" in await _refusal(app, "tokens", "adjust", slug, f"{change:+d}", "x")
        else:
            await admin(app, "tokens", "adjust", slug, f"{change:+d}", "fix")
            balance += change
        assert balance >= 0
    assert (await admin(app, "tenant", "show", slug)).data["token_balance"] == balance
    assert (await admin(app, "ledger", "verify")).data["ok"] is True


async def test_console_commands_from_the_shell(
    tmp_path: Path, database_url: str, llm: FakeLLMServer
) -> None:
    env = _env(tmp_path, DATABASE_URL=database_url, OPENAI_BASE_URL=llm.base_url)
    assert (await _run(["admin", "tenant", "create", "acme", "--name", "Acme"], env))[0] == 0
    code, out, err = await _run(["chat", "--tenant", "acme", "--user", "eve"], env, b"hi\n")
    assert code == 0, err
    code, out, err = await _run(["admin", "--json", "tenant", "members", "acme"], env)
    assert code == 0, err
    assert [m["member"] for m in json.loads(out)["members"]] == ["console:eve"]
    code, out, err = await _run(["admin", "tenant", "block", "acme", "console:eve"], env)
    assert (code, out.strip()) == (0, "Blocked console:eve in acme."), err
    code, out, err = await _run(["admin", "tokens", "adjust", "acme", "+50", "goodwill"], env)
    assert code == 0 and "Adjusted acme by +50 tokens (goodwill)" in out, err
    code, out, _ = await _run(["admin", "--json", "tokens", "adjust", "acme", "-51", "x"], env)
    assert code == 1 and "below 0" in json.loads(out)["error"]
    code, out, err = await _run(["admin", "tenant", "unlink", "acme", "console:tenant:acme"], env)
    assert code == 0, err


async def test_a_leaked_invite_answered_from_telegram(
    start: Start,  # noqa: F811 (the fixture)
    llm: FakeLLMServer,
) -> None:
    """A stranger used the tenant's invite: the admin sees them, blocks them, unlinks the chat;
    the rest of the tenant goes on."""
    run = await start(SUPERADMINS=f"telegram:{ADMIN_ID}")
    fake = run.fake
    await bind_private(run)  # USER's private chat linked to acme
    await fake.send_update(fake.private_message(USER, "hello"))
    await fake.wait_for_bot_messages(USER, 2)
    calls = len(llm.requests)

    async def ask(text: str, replies: int) -> str:
        await fake.send_update(fake.private_message(ADMIN_ID, text))
        await fake.wait_for_bot_messages(ADMIN_ID, replies)
        return fake.bot_texts(ADMIN_ID)[-1] or ""

    listed = await ask("/tenant members acme", 1)
    assert f"telegram:{USER}" in listed and f"telegram:user:{USER} · linked" in listed
    assert await ask(f"/tenant block acme telegram:{USER}", 2) == (
        f"Blocked telegram:{USER} in acme."
    )
    await fake.send_update(fake.private_message(USER, "still there?"))
    await fake.wait_for_bot_messages(USER, 3)
    assert fake.bot_texts(USER)[-1] == (
        "Your access to this organisation is blocked. Ask its administrator."
    )
    assert len(llm.requests) == calls
    assert await ask(f"/tenant unlink acme telegram:user:{USER}", 3) == (
        f"Unlinked telegram:user:{USER} from acme."
    )
    await fake.send_update(fake.private_message(USER, "hello?"))
    await fake.wait_for_bot_messages(USER, 4)
    assert "not linked to an organisation" in (fake.bot_texts(USER)[-1] or "")
    assert len(llm.requests) == calls
    actions = await _audit_actions(run.app)
    assert ("tenant.block", f"telegram:{USER}") in actions
    assert ("tenant.unlink", f"telegram:user:{USER}") in actions


async def test_tokens_adjust_from_the_console_chat(app: App) -> None:
    await tenant_with_tokens(app, tokens=1_000)
    await bind_console(app)
    await admin(app, "admin", "add", "console:boss", "admin")
    sink = await say(app, "/tokens adjust acme -250 duplicate grant", user="boss")
    assert sink.texts == ["Adjusted acme by -250 tokens (duplicate grant); balance 1,000 → 750."]
    refused = await say(app, "/tokens adjust acme -751 oops", user="boss")
    assert "below 0. Nothing was changed." in refused.texts[0]
    member = await say(app, "/tokens adjust acme +1000000 free", user="alice")
    assert member.texts[0].startswith("Permission denied")
    assert (await admin(app, "tenant", "show", "acme")).data["token_balance"] == 750
