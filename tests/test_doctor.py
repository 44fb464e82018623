"""``switchboard doctor`` as a real subprocess against the local fake peers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.slack_server import FakeSlackServer
from tests.fakes.stripe_server import API_KEY, FakeStripeServer
from tests.fakes.telegram_server import FakeTelegramServer
from tests.test_cli import _env, _run


@pytest.fixture
async def peers() -> AsyncIterator[tuple[FakeTelegramServer, FakeSlackServer, FakeStripeServer]]:
    telegram, slack, stripe = FakeTelegramServer(), FakeSlackServer(), FakeStripeServer()
    for server in (telegram, slack, stripe):
        await server.start()
    yield telegram, slack, stripe
    for server in (telegram, slack, stripe):
        await server.stop()


def _lines(out: str) -> dict[str, str]:
    """``{"provider openai": "ok  provider openai: …"}``, one entry per part."""
    return {line[6:].split(":", 1)[0]: line for line in out.splitlines()}


async def test_doctor_checks_every_configured_part(
    tmp_path: Path,
    database_url: str,
    llm: FakeLLMServer,
    peers: tuple[FakeTelegramServer, FakeSlackServer, FakeStripeServer],
) -> None:
    telegram, slack, stripe = peers
    env = _env(
        tmp_path,
        DATABASE_URL=database_url,
        OPENAI_BASE_URL=llm.base_url,
        OPENAI_API_KEY="sk-doctor-secret",
        ANTHROPIC_BASE_URL=llm.anthropic_base_url,
        DEFAULT_MODEL="gpt-4o-mini",
        TELEGRAM_BOT_TOKEN=telegram.token,
        TELEGRAM_API_BASE=telegram.base_url,
        SLACK_BOT_TOKEN=slack.token,
        SLACK_SIGNING_SECRET="signing-secret",
        SLACK_API_BASE=slack.api_base,
        STRIPE_SECRET_KEY=API_KEY,
        STRIPE_WEBHOOK_SECRET="whsec_x",
        STRIPE_API_BASE=stripe.base_url,
        PUBLIC_BASE_URL="https://switchboard.example",
    )

    code, out, err = await _run(["doctor"], env)
    assert code == 1, "a database that was never migrated is broken"
    assert "run `switchboard migrate`" in _lines(out)["database"]

    assert (await _run(["migrate"], env))[0] == 0
    code, out, err = await _run(["doctor"], env)
    lines = _lines(out)
    assert code == 0, out + err
    assert lines["settings"].startswith("ok    settings: channels telegram (polling), slack (http)")
    assert lines["database"].startswith("ok")
    assert lines["provider openai"] == (
        "ok    provider openai: gpt-4o-mini answered in "
        f"{-(-len(llm.reply_text) // llm.chunk_size)} streamed parts; "
        f"usage reported (in {llm.last_usage and llm.last_usage['input']}, "
        f"out {llm.last_usage and llm.last_usage['output']}); priced"
    )
    assert llm.last_request.json["max_output_tokens"] == 16
    assert lines["provider anthropic"].startswith("skip")
    assert lines["telegram"] == (
        f"ok    telegram: @{telegram.username} (id {telegram.bot_id}), getMe answered"
    )
    assert lines["slack"].startswith("ok    slack: team Acme (T0001)")
    assert lines["stripe"] == (
        "ok    stripe: account acct_fake0000000001 (test mode, charges enabled)"
    )

    # A server that stops reporting usage is a warning; one refusing the key is broken.
    llm.send_usage = False
    code, out, _ = await _run(["doctor"], env)
    assert code == 0 and "NO usable usage reported" in _lines(out)["provider openai"]
    llm.fail_next(401, message="Incorrect API key provided: sk-doctor-secret")
    code, out, _ = await _run(["doctor"], env)
    assert code == 1
    assert _lines(out)["provider openai"].startswith("fail  provider openai: openai: HTTP 401")
    assert "sk-doctor-secret" not in out


async def test_doctor_offline_checks_settings_only(tmp_path: Path, llm: FakeLLMServer) -> None:
    env = _env(tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/none.db")
    code, out, _ = await _run(["doctor", "--offline"], env)
    assert code == 1
    assert out.startswith("fail  settings: No channel configured")
    assert "No LLM provider configured" in out
    assert not (tmp_path / "none.db").exists(), "offline touches nothing"
    assert llm.requests == []
