"""``/alerts``: each kind raised by a crafted state at its threshold, and not just below it,
with the clock injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from admin_commands.registry import Caller
from bot.app import App
from core.errors import PermissionDenied
from storage.models import ModelPrice, Tenant, UsageEvent
from storage.repositories.ledger import LedgerRepository
from storage.repositories.rollups import RollupRepository, UsageDelta
from storage.repositories.tenants import TenantRepository
from tests.conftest import AppFactory, admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Clock:
    """The app's clock, moved by the test."""

    def __init__(self, at: datetime = NOW) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app(make_app: AppFactory, clock: Clock) -> App:
    built: App = await make_app(clock=clock)
    return built


async def _alerts(app: App, kind: str) -> list[dict[str, Any]]:
    result = await admin(app, "alerts")
    return [a for a in result.data if a["kind"] == kind]


async def _set(app: App, slug: str, **values: Any) -> None:
    async with app.deps.sessions.begin() as session:
        await session.execute(update(Tenant).where(Tenant.slug == slug).values(**values))


async def _tenant(app: App, slug: str, **values: Any) -> None:
    """A tenant, recently active (so only the alert under test fires), with ``values``."""
    await tenant_with_tokens(app, slug, tokens=0)
    defaults: dict[str, Any] = {"last_activity_at": NOW, "created_at": NOW - timedelta(days=30)}
    await _set(app, slug, **{**defaults, **values})


async def _charge(app: App, slug: str, tokens: int, day: datetime = NOW) -> None:
    """Tokens charged this month, as metering records them in the rollups."""
    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(slug)
        await RollupRepository(session).record(
            UsageDelta(
                day=day.date(),
                tenant_id=tenant.id,
                assistant_id=0,
                provider="openai",
                model="gpt-4o-mini",
                cost_currency="USD",
                settled=True,
                charged_tokens=tokens,
            )
        )


async def _post(app: App, slug: str, kind: str, tokens: int) -> None:
    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(slug)
        await LedgerRepository(session).post(tenant.id, kind, tokens, now=NOW)


async def test_quota_at_80_percent_and_not_one_token_below(app: App) -> None:
    await _tenant(app, "over", plan="postpaid", monthly_token_quota=1_000)
    await _tenant(app, "under", plan="postpaid", monthly_token_quota=1_000)
    await _tenant(app, "prepaid", monthly_token_quota=1_000)
    await _charge(app, "over", 800)
    await _charge(app, "under", 799)
    await _charge(app, "under", 5_000, day=NOW - timedelta(days=30))  # last month's
    await _charge(app, "prepaid", 900)  # a quota only means something for postpaid
    assert await _alerts(app, "quota") == [
        {
            "kind": "quota",
            "tenant": "over",
            "detail": "80% of the monthly quota used (800 of 1,000 tokens)",
        }
    ]
    text = (await admin(app, "alerts")).text
    assert "• Quota · over: 80% of the monthly quota used (800 of 1,000 tokens)" in text

    await _set(app, "over", status="suspended")
    assert await _alerts(app, "quota") == [], "a suspended tenant was already acted on"


async def test_low_balance_under_20_percent_of_the_last_top_up(app: App) -> None:
    for slug in ("low", "edge", "refilled", "never"):
        await _tenant(app, slug)
    await _post(app, "low", "grant", 1_000)
    await _post(app, "low", "usage", -801)  # 199 left: under 200
    await _post(app, "edge", "purchase", 1_000)
    await _post(app, "edge", "usage", -800)  # 200 left: exactly 20 %, not under
    await _post(app, "refilled", "grant", 10_000)
    await _post(app, "refilled", "usage", -9_950)
    await _post(app, "refilled", "grant", 100)  # the last top-up is what counts: 150 of 100
    [alert] = await _alerts(app, "low_balance")
    assert alert == {
        "kind": "low_balance",
        "tenant": "low",
        "detail": "balance 199 tokens, under 20% of the last top-up (1,000 on 2026-11-22)",
    }
    await _set(app, "edge", plan="postpaid")
    await _post(app, "edge", "usage", -100)
    assert [a["tenant"] for a in await _alerts(app, "low_balance")] == ["low"], (
        "postpaid tenants have no prepaid balance to run low"
    )


async def test_inactive_for_seven_days(app: App, clock: Clock) -> None:
    await _tenant(app, "quiet", last_activity_at=NOW - timedelta(days=7))
    await _tenant(app, "recent", last_activity_at=NOW - timedelta(days=7) + timedelta(minutes=1))
    await _tenant(app, "never", last_activity_at=None, created_at=NOW - timedelta(days=9))
    await _tenant(app, "new", last_activity_at=None, created_at=NOW - timedelta(days=6))
    assert await _alerts(app, "inactive") == [
        {
            "kind": "inactive",
            "tenant": "never",
            "detail": "no activity since it was created on 2026-11-13 (9 days)",
        },
        {"kind": "inactive", "tenant": "quiet", "detail": "no activity since 2026-11-15 (7 days)"},
    ]
    clock.at = NOW + timedelta(minutes=1)
    assert [a["tenant"] for a in await _alerts(app, "inactive")] == ["never", "quiet", "recent"]


async def test_trial_ending_within_three_days_or_ended(app: App) -> None:
    await _tenant(app, "ending", trial_ends_at=NOW + timedelta(days=3))
    await _tenant(app, "later", trial_ends_at=NOW + timedelta(days=3, seconds=1))
    await _tenant(app, "ended", trial_ends_at=NOW - timedelta(hours=1))
    await _tenant(app, "paying", status="active", trial_ends_at=NOW - timedelta(days=1))
    assert await _alerts(app, "trial") == [
        {"kind": "trial", "tenant": "ended", "detail": "trial ended on 2026-11-22"},
        {
            "kind": "trial",
            "tenant": "ending",
            "detail": "trial ends on 2026-11-25 12:00 UTC (in 3 days)",
        },
    ]


async def test_unpriced_models_for_seven_days_until_priced(
    make_app: AppFactory, clock: Clock, llm: FakeLLMServer
) -> None:
    app: App = await make_app(
        clock=clock, DEFAULT_PROVIDER="openai_chat", DEFAULT_MODEL="my-local-llama"
    )
    await tenant_with_tokens(app)
    await bind_console(app)
    await say(app, "hello")
    await say(app, "hello again")
    clock.at = NOW + timedelta(days=7)
    assert await _alerts(app, "unpriced_model") == [
        {
            "kind": "unpriced_model",
            "tenant": None,
            "detail": "openai_chat/my-local-llama: 2 calls metered at zero cost "
            "(no known price; add one to model_prices)",
        }
    ]
    clock.at = NOW + timedelta(days=7, seconds=1)
    assert await _alerts(app, "unpriced_model") == [], "older than the window"

    clock.at = NOW + timedelta(days=1)
    async with app.deps.sessions.begin() as session:
        session.add(
            ModelPrice(
                provider="openai_chat",
                model="my-local-llama",
                input_per_mtok_micros=1_000_000,
                cached_input_per_mtok_micros=None,
                output_per_mtok_micros=1_000_000,
                currency="USD",
            )
        )
    app.deps.pricer.invalidate()  # as setting a price does
    await say(app, "priced now")
    assert await _alerts(app, "unpriced_model") == [], "its calls are priced again"


async def test_overdraft_names_the_tenant(app: App, clock: Clock, llm: FakeLLMServer) -> None:
    for slug in ("acme", "beta"):
        await tenant_with_tokens(app, slug, tokens=300)
        await bind_console(app, slug)
    await say(app, "hello", slug="beta")  # reported within the reservation: no alert
    llm.extra_input_tokens = 5_000
    await say(app, "hello", slug="acme")
    [alert] = await _alerts(app, "overdraft")
    async with app.deps.sessions() as session:
        excess = (await session.execute(select(func.sum(UsageEvent.overdraft_tokens)))).scalar()
        balance = (await TenantRepository(session).get("acme")).token_balance
    assert excess and excess > 4_000 and balance < 0
    assert alert == {
        "kind": "overdraft",
        "tenant": "acme",
        "detail": f"charged {excess:,} tokens beyond the reservation in 1 call "
        f"(last 2026-11-22); balance {balance:,} tokens",
    }
    clock.at = NOW + timedelta(days=7, seconds=1)
    assert await _alerts(app, "overdraft") == []


async def test_alerts_are_read_by_viewers_only(app: App) -> None:
    await _tenant(app, "acme", trial_ends_at=NOW)
    viewer = Caller(channel="telegram", user_id="7", role="viewer")
    assert [a["tenant"] for a in (await admin(app, "alerts", caller=viewer)).data] == ["acme"]
    async with app.deps.sessions() as session:
        tenant = await TenantRepository(session).get("acme")
    member = Caller(channel="telegram", user_id="8", tenant=tenant)
    with pytest.raises(PermissionDenied) as refused:
        await admin(app, "alerts", caller=member)
    assert refused.value.user_message == "Permission denied: /alerts needs the viewer role."


async def test_a_long_list_is_counted_by_kind_and_cut_in_chat(app: App) -> None:
    async with app.deps.sessions.begin() as session:
        tenants = TenantRepository(session)
        for n in range(55):
            tenant = await tenants.create(
                slug=f"idle-{n:02}",
                name=f"Idle {n}",
                email=None,
                currency="EUR",
                vat_rate_ppm=0,
                trial_ends_at=None,
            )
            tenant.created_at = NOW - timedelta(days=10)
    await _tenant(app, "ending", trial_ends_at=NOW + timedelta(days=1))
    result = await admin(app, "alerts")
    lines = result.text.splitlines()
    assert lines[0] == "56 alerts (1 trial, 55 inactive):"
    assert lines[1].startswith("• Trial · ending: trial ends on 2026-11-23 12:00 UTC (in 1 day)")
    assert sum(line.startswith("•") for line in lines) == 50
    assert lines[-1] == "… and 6 more (--json from the shell lists them all)"
    assert len(result.data) == 56


async def test_failed_payments_and_overdue_invoices(make_app: AppFactory) -> None:
    """A payment alert recorded by the Stripe webhook, and an invoice sent and not paid by its
    due date, are listed; an invoice not yet due is not."""
    from storage.models import Alert as PaymentAlert

    now = [datetime(2026, 11, 22, 9, 0, tzinfo=UTC)]
    app = await make_app(clock=lambda: now[0], INVOICE_DUE_DAYS="14")
    await tenant_with_tokens(app, "acme")
    await tenant_with_tokens(app, "beta")
    async with app.deps.sessions.begin() as session:
        tenant = (await session.execute(select(Tenant).where(Tenant.slug == "beta"))).scalar_one()
        session.add(
            PaymentAlert(
                kind="payment_failed",
                tenant_id=tenant.id,
                detail="renewal of pro declined",
                created_at=now[0] - timedelta(days=1),
            )
        )
    created = await admin(app, "invoice", "new", "acme", "120", "Consulting")
    number = created.data["number"]
    await app.deps.invoices.send(number, actor="test")

    kinds = {(a["kind"], a["tenant"]) for a in (await admin(app, "alerts")).data}
    assert ("failed_payment", "beta") in kinds
    assert ("overdue_invoice", "acme") not in kinds, "not due yet"

    now[0] += timedelta(days=15)
    alerts = [a for a in (await admin(app, "alerts")).data if a["kind"] == "overdue_invoice"]
    assert [(a["tenant"], a["detail"].split(":")[0]) for a in alerts] == [("acme", number)]
