"""The shell says what it did: unknown commands and refusals exit 1, help lists what the shell
can run, and actions are audited as ``shell:<OS user>``."""

from __future__ import annotations

import json
from pathlib import Path

from admin_commands.registry import Caller
from bot.app import App
from tests.conftest import admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.test_cli import _env, _run


async def test_unknown_command_and_refusals_exit_1(
    tmp_path: Path, database_url: str, llm: FakeLLMServer
) -> None:
    env = _env(tmp_path, DATABASE_URL=database_url, OPENAI_BASE_URL=llm.base_url)
    code, out, err = await _run(["admin", "frobnicate"], env)
    assert (code, out) == (1, "")
    assert err.strip() == (
        "Unknown command 'frobnicate'. Run `switchboard admin help` for the commands you can run."
    )
    code, out, _ = await _run(["admin", "--json", "frobnicate"], env)
    assert code == 1 and json.loads(out)["error"].startswith("Unknown command 'frobnicate'.")
    code, out, err = await _run(["admin", "tokens", "grant", "acme"], env)
    assert code == 1 and err.startswith("The following arguments are required: N.\n"), err
    code, out, _ = await _run(["admin", "--json", "tenant", "create", "x"], env)
    assert code == 1 and "--name" in json.loads(out)["error"]


async def test_shell_help_lists_what_the_shell_can_run(
    tmp_path: Path, database_url: str, llm: FakeLLMServer
) -> None:
    env = _env(tmp_path, DATABASE_URL=database_url, OPENAI_BASE_URL=llm.base_url)
    code, out, err = await _run(["admin", "--json", "help"], env)
    assert code == 0, err
    names = {c["command"] for c in json.loads(out)}
    assert {"buy", "usage", "invoices", "library", "tenant create"} <= names
    assert not {"start", "join", "use", "new", "assistants"} & names
    usages = {c["command"]: c["usage"] for c in json.loads(out)}
    assert usages["usage"] == "/usage [--tenant TENANT]"


async def test_a_members_help_has_no_tenant_option(app: App) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    sink = await say(app, "/help")
    [text] = sink.texts
    assert "/usage — " in text and "/buy [PACK] — " in text
    assert "--tenant" not in text
    # An admin in a chat still sees it: they may name any tenant.
    boss = Caller(channel="console", user_id="boss", role="admin")
    helped = await admin(app, "help", caller=boss)
    assert "/usage [--tenant TENANT]" in helped.text


async def test_shell_actions_are_audited_as_the_os_user(
    tmp_path: Path, database_url: str, llm: FakeLLMServer
) -> None:
    env = _env(tmp_path, DATABASE_URL=database_url, OPENAI_BASE_URL=llm.base_url, LOGNAME="dana")
    code, _, err = await _run(["admin", "tenant", "create", "acme", "--name", "Acme"], env)
    assert code == 0, err
    code, out, err = await _run(["admin", "--json", "audit", "--actor", "shell:dana"], env)
    assert code == 0, err
    [entry] = json.loads(out)
    assert (entry["actor"], entry["action"]) == ("shell:dana", "tenant.create")
    for actor in ("scheduler", "stripe", "console:alice", "slack:T1/U2"):
        code, out, err = await _run(["admin", "audit", "--actor", actor], env)
        assert (code, out.strip()) == (0, "No audit entries."), err
