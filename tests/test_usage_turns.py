"""Whole turns against servers whose usage reports differ from the newest SDK's idea of them:
the answer reaches the chat and the library, and the debit is the normalised usage."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from bot.app import App
from storage.models import ContentItem, Tenant, UsageEvent
from tests.conftest import AppFactory, admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer

GRANT = 100_000


async def _turn(app: App, text: str = "hello there") -> tuple[list[str], UsageEvent, Tenant]:
    await tenant_with_tokens(app, tokens=GRANT)
    await bind_console(app)
    sink = await say(app, text)
    async with app.deps.sessions() as session:
        [event] = (await session.execute(select(UsageEvent))).scalars().all()
        tenant = (await session.execute(select(Tenant))).scalar_one()
        items = (await session.execute(select(ContentItem.text))).scalars().all()
    assert items == [sink.texts[-1]], "the answer is in the library"
    assert event.status == "settled"
    assert tenant.tokens_reserved == 0
    assert tenant.token_balance == GRANT - event.charged_tokens
    assert (await admin(app, "ledger", "verify")).data["ok"] is True
    return sink.texts, event, tenant


async def test_responses_usage_without_cache_write_tokens(app: App, llm: FakeLLMServer) -> None:
    # OpenAI's 2025 shape: details present, no cache_write_tokens (the newest SDK requires it).
    llm.usage_details = True
    texts, event, _ = await _turn(app)
    assert texts[-1] == llm.reply_text
    report = json.loads(event.usage_report or "")
    assert "cache_write_tokens" not in report["input_tokens_details"]
    assert event.charged_tokens == report["input_tokens"] + report["output_tokens"]
    assert event.priced and not event.estimated


async def test_responses_2026_usage_with_cache_writes(app: App, llm: FakeLLMServer) -> None:
    llm.usage_shape = "2026"
    llm.cache_write_tokens = 3
    _, event, _ = await _turn(app)
    assert llm.last_usage is not None
    assert event.cache_write_tokens == 3
    assert event.charged_tokens == llm.last_usage["input"] + llm.last_usage["output"]


async def test_azure_cached_above_prompt_is_charged_and_priced(
    make_app: AppFactory, llm: FakeLLMServer
) -> None:
    app = await make_app(DEFAULT_PROVIDER="openai_chat", DEFAULT_MODEL="gpt-4o")
    llm.usage_override = {
        "prompt_tokens": 7,
        "completion_tokens": 20,
        "total_tokens": 27,
        "prompt_tokens_details": {"cached_tokens": 161},
    }
    texts, event, _ = await _turn(app)
    assert texts[-1] == llm.reply_text
    assert (event.input_tokens, event.cached_input_tokens, event.charged_tokens) == (7, 7, 27)
    assert event.priced and event.cost_micros > 0


async def test_reasoning_outside_completion_is_charged(
    make_app: AppFactory, llm: FakeLLMServer
) -> None:
    # xAI Chat Completions: prompt 12, completion 2, reasoning 340, total 354: xAI bills 354.
    app = await make_app(DEFAULT_PROVIDER="openai_chat", DEFAULT_MODEL="grok-3-mini")
    llm.usage_override = {
        "prompt_tokens": 12,
        "completion_tokens": 2,
        "total_tokens": 354,
        "completion_tokens_details": {"reasoning_tokens": 340},
    }
    _, event, _ = await _turn(app)
    assert (event.output_tokens, event.reasoning_tokens, event.charged_tokens) == (342, 340, 354)


async def _alerts(app: App) -> list[dict[str, Any]]:
    result = await admin(app, "alerts")
    return list(result.data)


async def test_stream_without_usage_is_charged_an_estimate_and_alerted(
    make_app: AppFactory, llm: FakeLLMServer
) -> None:
    app = await make_app(DEFAULT_PROVIDER="openai_chat", DEFAULT_MODEL="local-llama")
    llm.send_usage = False  # a server that ignores stream_options.include_usage
    texts, event, _ = await _turn(app)
    assert texts[-1] == llm.reply_text
    assert event.estimated and event.usage_report is None
    assert event.charged_tokens > 0
    [alert] = [a for a in await _alerts(app) if a["kind"] == "unmetered"]
    assert alert["tenant"] is None
    assert alert["detail"].startswith("openai_chat/local-llama: 1 call charged an estimate")


async def test_anthropic_message_without_final_usage_is_estimated(
    make_app: AppFactory, llm: FakeLLMServer
) -> None:
    app = await make_app(DEFAULT_PROVIDER="anthropic", DEFAULT_MODEL="claude-sonnet-4-5")
    llm.send_usage = False
    _, event, _ = await _turn(app)
    assert event.estimated
    assert json.loads(event.usage_report or "")["message_start"]["output_tokens"] == 1


async def test_anthropic_cache_writes_are_charged_as_input(
    make_app: AppFactory, llm: FakeLLMServer
) -> None:
    app = await make_app(DEFAULT_PROVIDER="anthropic", DEFAULT_MODEL="claude-sonnet-4-5")
    llm.cache_write_tokens = 5
    llm.cached_tokens = 4
    _, event, _ = await _turn(app, "a longer question so that the cache counts fit in it")
    assert llm.last_usage is not None
    assert (event.cache_write_tokens, event.cached_input_tokens) == (5, 4)
    assert event.input_tokens == llm.last_usage["input"]
    assert event.charged_tokens == llm.last_usage["input"] + llm.last_usage["output"]
    report = json.loads(event.usage_report or "")
    assert report["message_delta"][-1]["cache_creation_input_tokens"] == 5
