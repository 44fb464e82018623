"""Invoices: numbering, VAT, monthly generation, manual commands, sending with a PDF and a pay
link through the real channels and the fake Stripe, the overdue sweep, reports."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from bot.channels import build_channels
from bot.service import ServiceRunner
from core.errors import SwitchboardError, UsageError
from storage.models import AuditLog, Invoice, InvoiceLine, JobRun
from storage.repositories.rollups import RollupRepository, UsageDelta
from storage.repositories.tenants import TenantRepository
from tests.conftest import AppFactory, admin, tenant_with_tokens
from tests.fakes.stripe_server import FakeStripeServer
from tests.fakes.telegram_server import FakeTelegramServer
from tests.test_payments import stripe_env


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


NOV = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


async def _postpaid(app: object, slug: str = "acme") -> None:
    await tenant_with_tokens(app, slug, tokens=0)  # type: ignore[arg-type]
    await admin(app, "tenant", "plan", slug, "postpaid")  # type: ignore[arg-type]
    async with app.deps.sessions.begin() as session:  # type: ignore[attr-defined]
        # A customer since before the months billed here (none is billed before it existed).
        (await TenantRepository(session).get(slug)).created_at = datetime(2026, 1, 5, tzinfo=UTC)


async def _usage(app: object, slug: str, model: str, day: date, cost_usd: str, tin: int) -> None:
    async with app.deps.sessions.begin() as session:  # type: ignore[attr-defined]
        tenant = await TenantRepository(session).get(slug)
        await RollupRepository(session).record(
            UsageDelta(day, tenant.id, 0, "openai", model, "USD", True, input_tokens=tin,
                       output_tokens=tin // 2, charged_tokens=tin + tin // 2,
                       cost_micros=int(Decimal(cost_usd) * 1_000_000))
        )  # fmt: skip


async def _count(app: object, model: type) -> int:
    async with app.deps.sessions() as session:  # type: ignore[attr-defined]
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_monthly_postpaid_invoice_lines_vat_and_idempotence(make_app: AppFactory) -> None:
    app = await make_app(clock=Clock(NOV))
    await _postpaid(app)
    await admin(app, "plan", "set", "postpaid", "--markup", "1.5", "--base-fee", "10")
    await _usage(app, "acme", "gpt-4o-mini", date(2026, 10, 3), "1.234567", 1000)
    await _usage(app, "acme", "gpt-4o-mini", date(2026, 10, 20), "2.000001", 3000)
    await _usage(app, "acme", "gpt-4o", date(2026, 10, 31), "7.333333", 500)
    await _usage(app, "acme", "gpt-4o", date(2026, 11, 1), "100", 500)  # November: not billed

    first = await admin(app, "invoice", "generate", "acme", "--period", "2026-10")
    [doc] = first.data
    assert doc["number"] == "INV-2026-0001" and doc["status"] == "draft"
    amounts = {line["description"].split(" ")[0]: line["amount"] for line in doc["lines"]}
    # (1.234567 + 2.000001) × 1.5 = 4.851852 → 4.85; 7.333333 × 1.5 = 10.9999995 → 11.00
    assert amounts == {"gpt-4o": "11.00", "gpt-4o-mini": "4.85", "Postpaid": "10.00"}
    assert doc["subtotal"] == "25.85" and doc["vat_rate"] == "0.20"
    assert doc["vat"] == "5.17" and doc["total"] == "31.02"
    assert "4,000 input + 2,000 output tokens" in doc["lines"][1]["description"]

    again = await admin(app, "invoice", "generate", "--all", "--period", "2026-10")
    assert [d["number"] for d in again.data] == ["INV-2026-0001"]
    assert await _count(app, Invoice) == 1


async def test_numbers_gapless_across_two_processes_and_restart_in_january(
    make_app: AppFactory,
) -> None:
    clock = Clock(NOV)
    one, two = await make_app(clock=clock), await make_app(clock=clock)
    await tenant_with_tokens(one, "acme", tokens=0)

    async def create(app: object, n: int) -> str:
        result = await admin(app, "invoice", "new", "acme", "12.5", f"Work {n}")  # type: ignore[arg-type]
        return str(result.data["number"])

    numbers = await asyncio.gather(*(create(one if n % 2 else two, n) for n in range(20)))
    assert sorted(numbers) == [f"INV-2026-{n:04d}" for n in range(1, 21)]
    clock.at = datetime(2027, 1, 2, tzinfo=UTC)
    assert await create(two, 99) == "INV-2027-0001"
    # A refused creation (unknown tenant) uses up no number.
    with pytest.raises(SwitchboardError):
        await admin(one, "invoice", "new", "nobody", "5", "x")
    assert await create(one, 100) == "INV-2027-0002"


async def test_manual_invoice_lifecycle_overdue_cancel_and_refusals(make_app: AppFactory) -> None:
    clock = Clock(NOV)
    app = await make_app(clock=clock, INVOICE_DUE_DAYS="14")
    await tenant_with_tokens(app, "acme", tokens=0)
    created = await admin(app, "invoice", "new", "acme", "0.33", "Consulting", "--qty", "1.5")
    number = created.data["number"]
    assert created.data["lines"][0]["amount"] == "0.50"  # 0.495 rounded to the cent
    line = await admin(app, "invoice", "line", number, "99.99", "Setup", "é", "€")
    assert line.data["subtotal"] == "100.49" and line.data["total"] == "120.59"

    sent = (await app.deps.invoices.send(number, actor="test")).to_json()
    assert sent["status"] == "sent" and sent["due_at"].startswith("2026-11-17")
    with pytest.raises(SwitchboardError, match="only be added to a draft"):
        await admin(app, "invoice", "line", number, "5", "Late")
    assert await _count(app, InvoiceLine) == 2

    clock.at = NOV + timedelta(days=13)
    assert await app.deps.invoices.sweep_overdue() == []
    clock.at = NOV + timedelta(days=15)
    assert await app.deps.invoices.sweep_overdue() == [number]
    assert (await admin(app, "invoice", "show", number)).data["status"] == "overdue"

    cancelled = await admin(app, "invoice", "cancel", number)
    assert cancelled.data["status"] == "cancelled" and cancelled.data["number"] == number
    with pytest.raises(SwitchboardError, match="not payable"):
        await admin(app, "invoice", "paid", number, "by transfer")
    nxt = await admin(app, "invoice", "new", "acme", "1", "Next")
    assert nxt.data["number"] != number  # never reused
    async with app.deps.sessions() as session:
        actions = set(await session.scalars(select(AuditLog.action)))
    assert {"invoice.create", "invoice.line", "invoice.send", "invoice.overdue",
            "invoice.cancel"} <= actions  # fmt: skip


@pytest.mark.parametrize(
    "words",
    [
        ["invoice", "show", "INV-2026-0999"],
        ["invoice", "line", "INV-2026-0999", "5", "x"],
        ["invoice", "new", "acme", "-5", "Refund"],
        ["invoice", "new", "acme", "abc", "Work"],
        ["invoice", "new", "acme", "0", "Work"],
        ["invoice", "new", "acme", "5"],
        ["invoice", "new", "acme", "5", "Work", "--qty", "-2"],
        ["invoice", "paid", "NOT-A-NUMBER"],
        ["invoice", "generate", "--all", "--period", "2026-13"],
        ["invoice", "generate", "--all", "--period", "2026-11"],
        ["invoice", "generate"],
        ["stats", "billing", "2026-13"],
        ["export", "invoices", "--period", "2026-13"],
    ],
)
async def test_bad_input_is_refused_and_writes_nothing(
    make_app: AppFactory, words: list[str]
) -> None:
    app = await make_app(clock=Clock(NOV))
    await tenant_with_tokens(app, "acme", tokens=0)
    with pytest.raises(SwitchboardError) as refused:
        await admin(app, *words)
    assert isinstance(refused.value, UsageError) or "No invoice" in refused.value.user_message
    assert await _count(app, Invoice) == 0


async def test_export_csv_matches_billing_stats(make_app: AppFactory) -> None:
    clock = Clock(NOV)
    app = await make_app(clock=clock)
    await tenant_with_tokens(app, "acme", tokens=0)
    await tenant_with_tokens(app, "zeta", tokens=0)
    numbers = []
    for slug, price in (("acme", "10"), ("acme", "20.5"), ("zeta", "7.77"), ("zeta", "3")):
        doc = (await admin(app, "invoice", "new", slug, price, "Work", "--qty", "2")).data
        await admin(app, "invoice", "line", doc["number"], "1.01", "Extra")
        await app.deps.invoices.send(doc["number"], actor="test")
        numbers.append(doc["number"])
    await admin(app, "invoice", "paid", numbers[0])
    await admin(app, "invoice", "paid", numbers[2], "wire")
    clock.at = NOV + timedelta(days=40)
    await app.deps.invoices.sweep_overdue()

    stats = (await admin(app, "stats", "billing", "2026-11")).data
    result = await admin(app, "export", "invoices", "--period", "2026-11")
    assert result.output is not None and result.output.path is not None
    exported = result.output.path.read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert len(rows) == 8
    totals = {r["number"]: (r["status"], Decimal(r["total"])) for r in rows}
    for r in rows:  # each invoice's lines add up to its subtotal
        lines = sum(Decimal(x["amount"]) for x in rows if x["number"] == r["number"])
        assert lines == Decimal(r["subtotal"])
    paid = sum(t for s, t in totals.values() if s == "paid")
    overdue = [t for s, t in totals.values() if s == "overdue"]
    assert Decimal(stats["revenue"]) == paid and stats["paid"] == 2
    assert stats["unpaid"] == 2 and stats["overdue"] == 2
    assert Decimal(stats["overdue_amount"]) == sum(overdue)
    assert Decimal(stats["average_invoice"]) == (sum(t for _, t in totals.values()) / 4).quantize(
        Decimal("0.01"), rounding="ROUND_DOWN"
    )


async def test_scheduler_generates_once_across_two_processes(make_app: AppFactory) -> None:
    clock = Clock(datetime(2026, 11, 1, 0, 5, tzinfo=UTC))
    one, two = await make_app(clock=clock), await make_app(clock=clock)
    await _postpaid(one)
    await _usage(one, "acme", "gpt-4o", date(2026, 10, 5), "3", 100)
    runners = [ServiceRunner(a, []) for a in (one, two)]
    results = await asyncio.gather(*(r.invoice_jobs.tick() for r in runners))
    assert sorted(r.generated or 0 for r in results) == [0, 1]
    assert sum(r.generated is not None for r in results) == 1
    assert await _count(one, Invoice) == 1
    assert await _count(one, JobRun) == 2  # generate for 2026-10 and this hour's sweep
    clock.at += timedelta(hours=1)
    again = await runners[1].invoice_jobs.tick()
    assert again.generated is None and again.overdue == []


async def test_send_to_telegram_pdf_pay_button_paid_once_then_refund(
    make_app: AppFactory,
) -> None:
    user = 515151
    async with FakeStripeServer() as stripe, FakeTelegramServer() as fake:
        app = await make_app(
            **stripe_env(stripe, TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_BASE=fake.base_url,
                         COMPANY_NAME="Switchboard Ltd", COMPANY_ADDRESS="1 Rue de la Paix, Paris",
                         COMPANY_VAT_ID="FR123")
        )  # fmt: skip
        service = ServiceRunner(
            app, build_channels(app.settings, app.deps, app.pipeline, app.registry)
        )
        await service.start()
        stripe.webhook_urls.append(f"http://127.0.0.1:{service.port}/stripe/webhook")
        try:
            code = await tenant_with_tokens(app, "acme", tokens=0)
            async with app.deps.sessions.begin() as session:
                tenant = await TenantRepository(session).get("acme")
                tenant.name = "Société Zürich Москва"
            await fake.send_update(fake.private_message(user, f"/start {code}"))
            await fake.wait_for_bot_messages(user)
            doc = (await admin(app, "invoice", "new", "acme", "100", "Consulting €")).data
            number = doc["number"]
            sent = await admin(app, "invoice", "send", number)
            assert sent.text.startswith(f"Sent {number}") and "to 1 of 1 recipient" in sent.text

            await fake.wait_for(lambda: bool(fake.calls_to("sendDocument", chat_id=user)))
            (document,) = fake.calls_to("sendDocument", chat_id=user)
            [pdf] = list(document.files.values())
            reader = PdfReader(io.BytesIO(pdf))
            text = "\n".join(page.extract_text() for page in reader.pages)
            assert len(reader.pages) == 1
            assert number in text and "120.00 EUR" in text and "Switchboard Ltd" in text
            assert "Société Zürich Москва" in text and "FR123" in text

            await fake.wait_for_bot_messages(user, 2)
            markup = fake.calls_to("sendMessage", chat_id=user)[-1].params["reply_markup"]
            url = (markup if isinstance(markup, dict) else __import__("json").loads(markup))[
                "inline_keyboard"
            ][0][0]["url"]
            session_id = stripe.session_for_url(url)["id"]
            assert stripe.sessions[session_id].data["amount_total"] == 12000
            # Sent again: the same session, not a second one.
            await admin(app, "invoice", "send", number)
            assert (await admin(app, "invoice", "show", number)).data["pay_url"] == url

            event = stripe.completed(session_id)
            for _ in range(3):
                assert await stripe.deliver(event) == [200]
            shown = (await admin(app, "invoice", "show", number)).data
            assert shown["status"] == "paid" and shown["paid_at"]
            async with app.deps.sessions() as session:
                paid_audits = await session.scalar(
                    select(func.count())
                    .select_from(AuditLog)
                    .where(AuditLog.action == "invoice.paid", AuditLog.target == number)
                )
            assert paid_audits == 1
            await fake.wait_for(lambda: any("is paid" in t for t in fake.bot_texts(user)))

            assert await stripe.deliver(stripe.refunded(session_id)) == [200]
            back = (await admin(app, "invoice", "show", number)).data
            assert back["status"] == "sent" and back["paid_at"] is None
            assert "refunded" in back["notes"]
        finally:
            await service.stop()
