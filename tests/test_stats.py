"""``/stats``: every figure equals sums computed here from the raw usage events, for every
variant and period; charts are real PNGs and reach Telegram and Slack as images."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from admin_commands.registry import Caller
from bot.app import App
from core.errors import UsageError
from core.money import from_micros
from core.period import Period, parse_period
from storage.models import Assistant, Tenant, UsageEvent
from storage.repositories.rollups import WindowPlan
from tests.conftest import AppFactory, admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer

TODAY = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
#: Days (before TODAY) on which turns happen: inside and outside each period.
DAYS_AGO = (0, 2, 6, 10, 29, 40, 80)


@pytest.fixture
async def busy(make_app: AppFactory, llm: FakeLLMServer) -> App:
    """Three tenants (one idle), two models, turns over several days, some failed calls."""
    now = [TODAY]
    app: App = await make_app(clock=lambda: now[0])
    for slug in ("acme", "beta", "gamma"):
        await tenant_with_tokens(app, slug, tokens=1_000_000)
        await bind_console(app, slug)
    await admin(app, "assistant", "set", "analyst", "model", "gpt-4.1-mini")
    for n, days_ago in enumerate(DAYS_AGO):
        now[0] = TODAY - timedelta(days=days_ago, hours=n % 3)
        llm.reply_text = " ".join(["word"] * (5 + n))
        await say(app, f"acme question {n}", slug="acme", user="ann")
        await say(app, "/use analyst", slug="beta", user="bob")
        await say(app, f"beta question {n} " * (n + 1), slug="beta", user="bob")
        if n % 3 == 0:
            llm.fail_next(status=500)
            await say(app, "this one fails", slug="acme", user="ann")
    now[0] = TODAY
    return app


async def _events(app: App) -> list[tuple[UsageEvent, str, str]]:
    async with app.deps.sessions() as session:
        rows = await session.execute(
            select(UsageEvent, Tenant.slug, Assistant.slug)
            .join(Tenant, Tenant.id == UsageEvent.tenant_id)
            .join(Assistant, Assistant.id == UsageEvent.assistant_id)
        )
        return [(e, t, a) for e, t, a in rows.all()]


def _in(period: Period, event: UsageEvent) -> bool:
    return period.start <= event.created_at.date() <= period.end


def _expected(events: Iterable[UsageEvent]) -> dict[str, Any]:
    done = [e for e in events if e.status in ("settled", "failed")]
    return {
        "input": sum(e.input_tokens for e in done),
        "output": sum(e.output_tokens for e in done),
        "turns": len(done),
        "failed": sum(e.status == "failed" for e in done),
        "cost": str(
            sum((from_micros(e.cost_micros) for e in done), Decimal(0)).quantize(Decimal("0.0001"))
        ),
    }


@pytest.mark.parametrize("label", ["7d", "30d", "90d", "2026-10", "2026-11"])
async def test_every_variant_equals_the_raw_events(busy: App, label: str) -> None:
    period = parse_period(label, TODAY.date())
    events = [(e, t, a) for e, t, a in await _events(busy) if _in(period, e)]
    assert any(e.status == "failed" for e, _, _ in events) or label == "2026-10"

    overview = (await admin(busy, "stats", label)).data
    expected = _expected(e for e, _, _ in events)
    assert overview["period"] == {"from": period.start.isoformat(), "to": period.end.isoformat()}
    assert overview["tokens"] == {"input": expected["input"], "output": expected["output"]}
    assert (overview["turns"], overview["failed_calls"]) == (expected["turns"], expected["failed"])
    assert overview["cost"] == expected["cost"] and overview["currency"] == "EUR"
    assert overview["tenants"] == {"active": 0, "trial": 3, "suspended": 0}

    by_tenant: dict[str, list[UsageEvent]] = defaultdict(list)
    by_model: dict[str, list[UsageEvent]] = defaultdict(list)
    by_assistant: dict[str, list[tuple[UsageEvent, str]]] = defaultdict(list)
    for event, tenant, assistant in events:
        by_tenant[tenant].append(event)
        by_model[event.model].append(event)
        by_assistant[assistant].append((event, tenant))

    rows = {r["slug"]: r for r in (await admin(busy, "stats", "tenants", label)).data}
    assert set(rows) == {"acme", "beta", "gamma"}
    for slug, row in rows.items():
        want = _expected(by_tenant.get(slug, []))
        assert (row["tokens"], row["cost"]) == (want["input"] + want["output"], want["cost"]), slug

    models = {m["model"]: m for m in (await admin(busy, "stats", "models", label)).data}
    assert set(models) == set(by_model)
    for model, row in models.items():
        want = _expected(by_model[model])
        assert row["tokens"] == {"input": want["input"], "output": want["output"]}
        assert (row["turns"], row["failed_calls"], row["cost"]) == (
            want["turns"],
            want["failed"],
            want["cost"],
        )

    assistants = {a["assistant"]: a for a in (await admin(busy, "stats", "assistants", label)).data}
    assert set(assistants) == set(by_assistant)
    for slug, row in assistants.items():
        pairs = by_assistant[slug]
        want = _expected(e for e, _ in pairs)
        assert row["uses"] == want["turns"]
        assert row["tenants"] == len({t for _, t in pairs})
        assert row["tokens"] == want["input"] + want["output"]
        assert row["success_rate"] == round(1 - want["failed"] / want["turns"], 4)

    top = (await admin(busy, "stats", "top", label)).data
    ranked = sorted(
        ((slug, _expected(evs)["cost"]) for slug, evs in by_tenant.items()),
        key=lambda kv: Decimal(kv[1]),
        reverse=True,
    )
    assert [(r["slug"], r["cost"]) for r in top] == ranked

    acme = (await admin(busy, "stats", "tenant", "acme", label)).data
    want = _expected(by_tenant["acme"])
    assert acme["tokens"] == {"input": want["input"], "output": want["output"]}
    assert (acme["turns"], acme["failed_calls"], acme["cost"]) == (
        want["turns"],
        want["failed"],
        want["cost"],
    )
    per_day = {d["day"]: d["tokens"] for d in acme["days"]}
    assert len(per_day) == len(period.days)
    assert sum(per_day.values()) == want["input"] + want["output"]


@pytest.mark.parametrize("offset", range(0, 62, 3))
@pytest.mark.parametrize("window", [7, 30, 90])
def test_window_plans_cover_each_day_exactly_once(window: int, offset: int) -> None:
    today = date(2026, 9, 1) + timedelta(days=offset)
    period = parse_period(f"{window}d", today)
    plan = WindowPlan.for_period(period, today)
    counted: dict[date, int] = defaultdict(int)
    for month in plan.months:
        day = month
        while day.month == month.month and day <= today:
            counted[day] += 1
            day += timedelta(days=1)
    for sign, ranges in ((1, plan.add), (-1, plan.subtract)):
        for first, last in ranges:
            for n in range((last - first).days + 1):
                counted[first + timedelta(days=n)] += sign
    assert {d for d, c in counted.items() if c} == set(period.days)
    assert all(c in (0, 1) for c in counted.values())
    edge_days = sum((b - a).days + 1 for a, b in (*plan.add, *plan.subtract))
    assert edge_days <= 16, "never more than about half a month of daily rows"


async def test_bad_periods_and_chart_rules(busy: App, tmp_path: Path) -> None:
    for bad in ("12d", "2026-13", "2027-01", "yesterday"):
        with pytest.raises(UsageError) as raised:
            await admin(busy, "stats", bad)
        assert "Usage: /stats" in raised.value.user_message, bad

    shell = await admin(busy, "stats", "30d")
    assert shell.files == [], "the shell draws no chart unless asked"
    target = tmp_path / "chart.png"
    drawn = await admin(busy, "stats", "30d", "--chart", str(target))
    assert drawn.data["chart"] == str(target)
    image = Image.open(target)
    assert image.format == "PNG" and image.size == (900, 480)

    viewer = Caller(channel="telegram", user_id="42", role="viewer")
    in_chat = await admin(busy, "stats", "top", caller=viewer)
    [chart] = in_chat.files
    assert chart.mime_type == "image/png"
    assert Image.open(io.BytesIO(chart.data)).format == "PNG"
    with pytest.raises(UsageError):
        await admin(busy, "stats", "--chart", "x.png", caller=viewer)


async def test_revenue_is_what_was_paid_in_the_period_less_refunds(busy: App) -> None:
    from storage.models import Payment

    async with busy.deps.sessions.begin() as session:
        tenant = (await session.execute(select(Tenant).where(Tenant.slug == "acme"))).scalar_one()
        for n, (days_ago, status, amount, refunded) in enumerate(
            [
                (1, "paid", 15_000_000, 0),
                (3, "refunded", 5_000_000, 5_000_000),
                (5, "paid", 50_000_000, 10_000_000),
                (45, "paid", 15_000_000, 0),  # before the 30-day window
                (2, "pending", 15_000_000, 0),  # never paid
            ]
        ):
            paid_at = None if status == "pending" else TODAY - timedelta(days=days_ago)
            session.add(
                Payment(
                    tenant_id=tenant.id,
                    kind="pack",
                    item="pro",
                    tokens=2_000_000,
                    amount_micros=amount,
                    currency="EUR",
                    status=status,
                    idempotency_key=f"revenue-{n}",
                    refunded_micros=refunded,
                    paid_at=paid_at,
                )
            )
    overview = (await admin(busy, "stats", "30d")).data
    assert overview["revenue"] == "55.00"
    assert (await admin(busy, "stats", "7d")).data["revenue"] == "55.00"
    assert (await admin(busy, "stats", "2026-10")).data["revenue"] == "15.00"
