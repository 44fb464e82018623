"""``/stats billing``'s business figures: MRR, ARR, churn, ARPU, revenue by pack and plan, the
revenue chart; the arithmetic as properties, the figures through chat and the shell."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from admin_commands import business_figures as figures
from bot.app import App
from storage.models import AuditLog, Invoice, Payment, Subscription
from storage.repositories.tenants import TenantRepository
from tests.conftest import AppFactory, admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.test_cli import _env, _run
from tests.test_invoices import Clock

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
micros = st.integers(0, 10**12)


@given(
    st.lists(micros, max_size=20), st.lists(st.lists(micros, min_size=1, max_size=6), max_size=10)
)
def test_mrr_is_the_sum_of_monthly_values_and_arr_twelve_times(
    prices: list[int], invoices: list[list[int]]
) -> None:
    averages = [figures.average(totals) for totals in invoices]
    mrr = figures.monthly_recurring(prices, averages)
    assert mrr == sum(prices) + sum(averages)
    assert figures.annual_recurring(mrr) == 12 * mrr
    for totals, mean in zip(invoices, averages, strict=True):
        # Rounded to the micro-unit, half-up: never further than half a micro from the mean.
        assert abs(Decimal(mean) - Decimal(sum(totals)) / len(totals)) <= Decimal("0.5")
        assert min(totals) <= mean <= max(totals)
    # The order subscriptions are summed in changes nothing.
    assert figures.monthly_recurring(prices[::-1], averages[::-1]) == mrr


@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_churn_rate_is_churned_over_tenants_at_start(churned: int, at_start: int) -> None:
    rate = figures.churn_rate(churned, at_start)
    if at_start == 0:
        assert rate is None
        return
    assert isinstance(rate, Decimal) and rate.as_tuple().exponent == -4
    assert abs(rate - Decimal(churned) / at_start) <= Decimal("0.00005")


@given(micros, st.integers(0, 10**6))
def test_arpu_is_revenue_per_customer(revenue: int, customers: int) -> None:
    arpu = figures.per_customer(revenue, customers)
    if customers == 0:
        assert arpu == 0
        return
    assert abs(Decimal(arpu) * customers - revenue) <= Decimal(customers) / 2


async def _business(app: App) -> None:
    """Four tenants: acme subscribed to pro, beta's starter cancelled this month, gamma
    postpaid with two monthly invoices, delta suspended this month; packs bought."""
    for slug in ("acme", "beta", "gamma", "delta"):
        await tenant_with_tokens(app, slug, tokens=0)
    await admin(app, "tenant", "plan", "gamma", "postpaid")
    await admin(app, "tenant", "suspend", "delta")
    async with app.deps.sessions.begin() as session:
        tenants = TenantRepository(session)
        acme, beta, gamma, delta = [
            await tenants.get(s) for s in ("acme", "beta", "gamma", "delta")
        ]
        for tenant in (acme, beta, gamma, delta):  # they existed before the month
            tenant.created_at = NOW - timedelta(days=60)
        session.add_all(
            [
                Subscription(tenant_id=acme.id, plan="pro", stripe_subscription_id="sub_a",
                             status="active", currency="EUR"),
                Subscription(tenant_id=beta.id, plan="starter", stripe_subscription_id="sub_b",
                             status="canceled", currency="EUR",
                             canceled_at=NOW - timedelta(days=5)),
            ]
        )  # fmt: skip
        for n, (period, total) in enumerate((("2026-09", 40_000_000), ("2026-10", 61_000_000))):
            session.add(
                Invoice(number=f"INV-2026-00{n + 1}", tenant_id=gamma.id, status="paid",
                        currency="EUR", vat_rate_ppm=200_000, total_micros=total,
                        subtotal_micros=total, period=period,
                        issued_at=NOW - timedelta(days=40 - 30 * n),
                        paid_at=NOW - timedelta(days=38 - 30 * n))
            )  # fmt: skip
        for n, (tenant, kind, item, amount, refunded) in enumerate(
            [
                (acme, "pack", "pro", 15_000_000, 0),
                (beta, "pack", "starter", 5_000_000, 5_000_000),
                (delta, "pack", "pro", 15_000_000, 0),
                (acme, "subscription", "pro", 29_000_000, 0),
            ]
        ):
            session.add(
                Payment(tenant_id=tenant.id, kind=kind, item=item, tokens=1, amount_micros=amount,
                        currency="EUR", status="refunded" if refunded else "paid",
                        idempotency_key=f"k{n}", refunded_micros=refunded,
                        paid_at=NOW - timedelta(days=3))
            )  # fmt: skip
        await session.flush()
    await admin(app, "tenant", "create", "newco", "--name", "New Co")
    async with app.deps.sessions.begin() as session:
        # Creation and audit times are the wall clock's: put them in the test's November.
        (await TenantRepository(session).get("newco")).created_at = NOW - timedelta(days=1)
        await session.execute(
            update(AuditLog)
            .where(AuditLog.action == "tenant.suspend")
            .values(created_at=NOW - timedelta(days=2))
        )


async def test_business_figures_in_chat_with_the_chart(make_app: AppFactory) -> None:
    app = await make_app(clock=Clock(NOW))
    await _business(app)
    data = (await admin(app, "stats", "billing", "2026-11")).data
    # pro subscription 29.00 + gamma's average monthly invoice (40.00 + 61.00) / 2 = 50.50
    assert (data["mrr"], data["arr"]) == ("79.50", "954.00")
    assert (data["new_tenants"], data["churned_tenants"], data["tenants_at_start"]) == (1, 2, 4)
    assert data["churn_rate"] == "0.5000"
    assert data["revenue_by_pack"] == {"pro": "30.00", "starter": "0.00"}
    assert data["revenue_by_plan"] == {"pro": "29.00"}
    assert data["customers"] == 4  # acme, beta, gamma, newco (delta is suspended)
    months = data["revenue_by_month"]
    assert (months["2026-10"], months["2026-11"], len(months)) == ("40.00", "61.00", 12)
    await bind_console(app, "acme")
    await admin(app, "admin", "add", "console:boss", "viewer")
    sink = await say(app, "/stats billing 2026-11", user="boss")
    [text] = sink.texts
    assert "MRR: 79.50 EUR · ARR: 954.00 EUR (1 subscription, 1 postpaid tenant)" in text
    assert "Tenants: 1 new, 2 churned of 4 at the start (churn rate 50.00 %)" in text
    assert "Revenue by pack: pro 30.00 EUR, starter 0.00 EUR" in text
    [chart] = sink.files
    assert chart.file_name == "revenue-2026-11.png" and chart.data.startswith(b"\x89PNG")


async def test_business_figures_from_the_shell(
    tmp_path: Path, database_url: str, llm: FakeLLMServer
) -> None:
    env = _env(tmp_path, DATABASE_URL=database_url, OPENAI_BASE_URL=llm.base_url)
    assert (await _run(["admin", "tenant", "create", "acme", "--name", "Acme"], env))[0] == 0
    chart = tmp_path / "revenue.png"
    code, out, err = await _run(["admin", "--json", "stats", "billing", "--chart", str(chart)], env)
    assert code == 0, err
    data = json.loads(out)
    for key in ("mrr", "arr", "new_tenants", "churned_tenants", "churn_rate", "arpu",
                "revenue_by_pack", "revenue_by_plan", "revenue_by_month"):  # fmt: skip
        assert key in data
    assert data["new_tenants"] == 1 and data["churn_rate"] is None
    assert chart.read_bytes().startswith(b"\x89PNG")
