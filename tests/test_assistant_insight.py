"""``/assistant stats`` against figures computed here from the raw usage events, and
``/assistant override``: one tenant's name and system prompt, seen by that tenant only."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from admin_commands.registry import Caller
from bot.app import App
from core.errors import NotFoundError, PermissionDenied, UsageError
from core.money import from_micros
from core.period import parse_period
from storage.models import Assistant, Tenant, TenantAssistant, UsageEvent
from tests.conftest import AppFactory, admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.test_alerts import Clock

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
async def used(make_app: AppFactory, llm: FakeLLMServer) -> App:
    """acme talks to ``general``, beta to ``analyst`` and ``general``; some calls are slow,
    some fail, some are outside the 7-day window."""
    clock = Clock(NOW)
    app: App = await make_app(clock=clock)
    for slug in ("acme", "beta"):
        await tenant_with_tokens(app, slug, tokens=1_000_000)
        await bind_console(app, slug)
    llm.pause_fn = lambda body: 0.05 if "slow" in str(body) else 0.0
    for n, days_ago in enumerate((0, 1, 3, 3, 12, 20)):
        clock.at = NOW - timedelta(days=days_ago, hours=n)
        await say(app, f"{'slow ' if n % 4 == 1 else ''}question {n}", slug="acme", user="ann")
        await say(app, "/use analyst", slug="beta", user="bob")
        await say(app, f"beta {n} " * (n + 1), slug="beta", user="bob")
        if n % 3 == 0:
            llm.fail_next(status=500)
            await say(app, "this one fails", slug="beta", user="bob")
    clock.at = NOW
    await say(app, "/use general", slug="beta", user="bob")
    await say(app, "beta asks general", slug="beta", user="bob")
    return app


async def _events(app: App) -> list[tuple[UsageEvent, str, str]]:
    async with app.deps.sessions() as session:
        rows = await session.execute(
            select(UsageEvent, Tenant.slug, Assistant.slug)
            .join(Tenant, Tenant.id == UsageEvent.tenant_id)
            .join(Assistant, Assistant.id == UsageEvent.assistant_id)
        )
        return [(e, t, a) for e, t, a in rows.all()]


def _expected(pairs: Iterable[tuple[UsageEvent, str]]) -> dict[str, Any]:
    done = [(e, t) for e, t in pairs if e.status in ("settled", "failed")]
    latencies = sorted(e.latency_ms or 0 for e, _ in done)
    n = len(done)
    return {
        "uses": n,
        "tenants": len({t for _, t in done}),
        "tokens": sum(e.input_tokens + e.output_tokens for e, _ in done),
        "cost": str(
            sum((from_micros(e.cost_micros) for e, _ in done), Decimal(0)).quantize(
                Decimal("0.0001")
            )
        ),
        "mean_latency_ms": round(sum(latencies) / n) if n else 0,
        # Nearest rank: the smallest latency with at least 95 % of the calls at or below it.
        "p95_latency_ms": latencies[math.ceil(0.95 * n) - 1] if n else None,
        "success_rate": round(sum(e.status == "settled" for e, _ in done) / n, 4) if n else 0.0,
    }


async def test_assistant_stats_equal_the_raw_events(used: App) -> None:
    for label in ("7d", "30d", "2026-11"):
        await _check_period(used, label)


async def _check_period(used: App, label: str) -> None:
    period = parse_period(label, NOW.date())
    events = [(e, t, a) for e, t, a in await _events(used) if period.start <= e.created_at.date()]
    by_assistant: dict[str, list[tuple[UsageEvent, str]]] = {}
    for event, tenant, assistant in events:
        by_assistant.setdefault(assistant, []).append((event, tenant))
    assert by_assistant["analyst"] and any(e.status == "failed" for e, _ in by_assistant["analyst"])

    rows = {r["assistant"]: r for r in (await admin(used, "assistant", "stats", label)).data}
    assert set(rows) == {"general", "post-writer", "analyst", "image-prompter"}
    for slug, row in rows.items():
        want = _expected(by_assistant.get(slug, []))
        got = {k: row[k] for k in want}
        assert got == want, (label, slug)
        assert row["currency"] == "EUR"

    general = await admin(used, "assistant", "stats", "general", label)
    assert general.data == rows["general"]
    assert general.data["tenants"] == 2 and general.data["p95_latency_ms"] is not None
    assert "p95 ms" in general.text and "general" in general.text


async def test_one_word_is_a_period_or_an_assistant(used: App) -> None:
    default = await admin(used, "assistant", "stats")
    assert default.data == (await admin(used, "assistant", "stats", "30d")).data
    assert "last 30 days" in default.text
    assert (await admin(used, "assistant", "stats", "analyst")).data["assistant"] == "analyst"
    seven = (await admin(used, "assistant", "stats", "7d")).data
    assert isinstance(seven, list)
    assert {r["assistant"]: r["uses"] for r in seven} != {
        r["assistant"]: r["uses"] for r in default.data
    }, "the window changes the figures"

    with pytest.raises(UsageError) as bad:
        await admin(used, "assistant", "stats", "general", "12d")
    assert "Usage: /assistant stats [SLUG] [7d|30d|90d|YYYY-MM]" in bad.value.user_message
    with pytest.raises(NotFoundError):
        await admin(used, "assistant", "stats", "nosuch")


# -- per-tenant overrides --------------------------------------------------------------------------


@pytest.fixture
async def two(app: App) -> App:
    for slug in ("acme", "beta"):
        await tenant_with_tokens(app, slug)
        await bind_console(app, slug)
    return app


async def _names(app: App, slug: str) -> dict[str, str]:
    listed = await say(app, "/assistants", slug=slug)
    return {line.split(" — ")[0][2:]: line for line in listed.texts[0].splitlines()[1:]}


async def test_override_changes_one_tenants_prompt_and_name(two: App, llm: FakeLLMServer) -> None:
    set_ = await admin(
        two,
        "assistant",
        "override",
        "general",
        "--tenant",
        "acme",
        "--name",
        "Acme Helper",
        "--prompt",
        "You are Acme's in-house helper.",
    )
    assert set_.data == {
        "assistant": "general",
        "tenant": "acme",
        "name": "Acme Helper",
        "system_prompt": "You are Acme's in-house helper.",
    }

    await say(two, "hello", slug="acme")
    assert llm.last_request.json["instructions"] == "You are Acme's in-house helper."
    await say(two, "hello", slug="beta")
    beta_prompt = llm.last_request.json["instructions"]
    assert "helpful" in beta_prompt and "Acme" not in beta_prompt

    assert "— Acme Helper:" in (await _names(two, "acme"))["general"]
    assert "Acme Helper" not in (await _names(two, "beta"))["general"]

    shown = await admin(two, "assistant", "override", "general", "--tenant", "acme")
    assert shown.data["name"] == "Acme Helper" and "currently" in shown.text

    renamed = await admin(
        two, "assistant", "override", "general", "--tenant", "acme", "--name", "Helper", "--clear"
    )
    assert (renamed.data["name"], renamed.data["system_prompt"]) == ("Helper", None)
    await say(two, "hello again", slug="acme")
    assert llm.last_request.json["instructions"] == beta_prompt, "back to the assistant's own"

    cleared = await admin(two, "assistant", "override", "general", "--tenant", "acme", "--clear")
    assert (cleared.data["name"], cleared.data["system_prompt"]) == (None, None)
    assert "Helper" not in (await _names(two, "acme"))["general"]

    [latest, *_] = (await admin(two, "audit", "acme", "--limit", "3")).data
    assert latest["action"] == "assistant.override" and latest["tenant"] == "acme"
    assert latest["before"] == {"name": "Helper", "system_prompt": None}
    assert latest["after"] == {"name": None, "system_prompt": None}


async def test_override_refusals_change_nothing(two: App) -> None:
    async def rows() -> list[tuple[str | None, str | None, bool]]:
        async with two.deps.sessions() as session:
            found = await session.execute(
                select(
                    TenantAssistant.custom_name,
                    TenantAssistant.system_prompt_override,
                    TenantAssistant.enabled,
                )
            )
            return [tuple(r) for r in found.all()]  # type: ignore[misc]

    with pytest.raises(UsageError) as both:
        await admin(
            two, "assistant", "override", "general", "--tenant", "acme", "--prompt", "x", "--clear"
        )
    assert "Give --prompt or --clear, not both." in both.value.user_message
    with pytest.raises(UsageError):
        await admin(two, "assistant", "override", "general", "--name", "No tenant")
    with pytest.raises(UsageError):
        await admin(two, "assistant", "override", "general", "--tenant", "acme", "--prompt", " ")
    with pytest.raises(NotFoundError):
        await admin(two, "assistant", "override", "general", "--tenant", "nosuch", "--name", "N")
    viewer = Caller(channel="telegram", user_id="5", role="viewer")
    with pytest.raises(PermissionDenied) as refused:
        await admin(
            two,
            "assistant",
            "override",
            "general",
            "--tenant",
            "acme",
            "--name",
            "N",
            caller=viewer,
        )
    assert "needs the editor role" in refused.value.user_message
    nothing = await admin(two, "assistant", "override", "general", "--tenant", "acme", "--clear")
    assert (nothing.data["name"], nothing.data["system_prompt"]) == (None, None)
    assert await rows() == [], "refusals, and clearing what was never set, write nothing"

    # Naming a private assistant for a tenant does not open it to that tenant.
    await admin(
        two, "assistant", "create", "secret", "--name", "Secret", "--prompt", "p", "--private"
    )
    await admin(two, "assistant", "override", "secret", "--tenant", "acme", "--name", "Ours")
    assert "secret" not in await _names(two, "acme")
    await admin(two, "assistant", "enable", "secret", "--tenant", "acme")
    assert "— Ours:" in (await _names(two, "acme"))["secret"]
