"""Assistant administration: prompt versions and rollback, per-tenant enable, private ones."""

from __future__ import annotations

import pytest

from bot.app import App
from core.errors import NotFoundError, UsageError
from tests.conftest import admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer


async def test_prompt_versions_and_rollback_reach_the_model(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    original = (await admin(app, "assistant", "prompt", "general")).data[0]["system_prompt"]

    await admin(
        app, "assistant", "prompt", "general", "You", "are", "a", "pirate.", "--note", "fun"
    )
    await say(app, "hello")
    assert llm.last_request.json["instructions"] == "You are a pirate."

    result = await admin(app, "assistant", "rollback", "general", "1")
    assert result.data == {"slug": "general", "version": 3, "restored": 1}
    await say(app, "hello again")
    assert llm.last_request.json["instructions"] == original

    history = (await admin(app, "assistant", "prompt", "general")).data
    assert [v["version"] for v in history] == [1, 2, 3]
    assert history[1]["note"] == "fun" and history[2]["note"] == "rollback to v1"


async def test_rollback_to_missing_version_is_refused(app: App) -> None:
    with pytest.raises(NotFoundError) as raised:
        await admin(app, "assistant", "rollback", "general", "9")
    assert raised.value.user_message == "No prompt version 'general v9'."
    listed = (await admin(app, "assistant", "list")).data
    assert next(a for a in listed if a["slug"] == "general")["prompt_version"] == 1


async def test_disable_for_one_tenant(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app, "acme")
    await tenant_with_tokens(app, "globex")
    await bind_console(app, "acme")
    await bind_console(app, "globex")
    await admin(app, "assistant", "disable", "analyst", "--tenant", "acme")
    acme = (await say(app, "/assistants", slug="acme")).texts[0]
    globex = (await say(app, "/assistants", slug="globex")).texts[0]
    assert "analyst" not in acme and "analyst" in globex
    refused = await say(app, "/use analyst", slug="acme")
    assert "No assistant 'analyst'" in refused.texts[0]


async def test_private_assistant_only_for_enabled_tenants(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app, "acme")
    await tenant_with_tokens(app, "globex")
    await bind_console(app, "acme")
    await bind_console(app, "globex")
    await admin(
        app,
        "assistant",
        "create",
        "legal",
        "--name",
        "Legal helper",
        "--prompt",
        "You answer legal questions.",
        "--private",
    )
    await admin(app, "assistant", "enable", "legal", "--tenant", "acme")
    assert "legal" in (await say(app, "/assistants", slug="acme")).texts[0]
    assert "legal" not in (await say(app, "/assistants", slug="globex")).texts[0]
    await say(app, "/use legal", slug="acme")
    await say(app, "can I do this?", slug="acme")
    assert llm.last_request.json["instructions"] == "You answer legal questions."


async def test_assistant_set_validates(app: App, llm: FakeLLMServer) -> None:
    with pytest.raises(UsageError):
        await admin(app, "assistant", "set", "general", "temperature", "hot")
    await admin(app, "assistant", "set", "general", "model", "gpt-4.1-mini")
    await tenant_with_tokens(app)
    await bind_console(app)
    await say(app, "hi")
    assert llm.last_request.json["model"] == "gpt-4.1-mini"
