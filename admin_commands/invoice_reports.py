"""``/stats billing [PERIOD]``: invoices issued in the period (drafts left out: nothing was
billed yet) and revenue paid in it, summed by the database, however many invoices there are.

``/export invoices`` (in ``admin_commands/exports.py``) has a row per invoice line, so its
per-invoice totals add up to these figures.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from admin_commands import business_figures as figures
from admin_commands import charts
from admin_commands.language import translator
from admin_commands.registry import CommandContext, CommandGroup, CommandResult
from admin_commands.reports import period_of
from admin_commands.stats import CHART, PERIOD, chart_files
from billing.amounts import amount_str, minor_places
from core.i18n import Translator
from core.money import from_micros
from core.period import Period, month_bounds
from storage.repositories.business import BusinessRepository
from storage.repositories.invoices import InvoiceRepository
from storage.states import InvoiceStatus

commands = CommandGroup()
READ = "stats.read"
#: Months of revenue in the chart and in ``revenue_by_month``.
MONTHS_CHARTED = 12
#: Months of invoices a postpaid tenant's average monthly invoice is taken over.
AVERAGE_MONTHS = 3
#: Issued invoices that bill nothing: a draft is not sent, a cancelled one is void.
_UNBILLED: tuple[InvoiceStatus, ...] = ("draft", "cancelled")
CSV_FIELDS = (
    "number", "tenant", "status", "issued_at", "due_at", "paid_at", "currency", "line",
    "description", "quantity", "unit_price", "amount", "subtotal", "vat_rate", "vat", "total",
)  # fmt: skip


def _instants(period: Period) -> tuple[datetime, datetime]:
    return (
        datetime.combine(period.start, time(), tzinfo=UTC),
        datetime.combine(period.end + timedelta(days=1), time(), tzinfo=UTC),
    )


@commands.command(
    "stats billing",
    permission=READ,
    arguments=[PERIOD, CHART],
)
async def billing(ctx: CommandContext) -> CommandResult:
    """Business figures for a period: revenue, MRR, ARR, churn, ARPU, revenue by pack and plan.

    Also the invoices paid, unpaid and overdue, the average invoice, and the new and churned
    tenants behind the churn rate."""
    period = period_of(ctx)
    since, until = _instants(period)
    months = _last_months(period.end, MONTHS_CHARTED)
    async with ctx.deps.sessions() as session:
        invoices = InvoiceRepository(session)
        issued = await invoices.issued_by_status(since, until)
        revenue = await invoices.paid_total(since, until)
        monthly = [await invoices.paid_total(*_month_instants(m)) for m in months]
        business = BusinessRepository(session)
        subscriptions = await business.subscription_prices()
        postpaid = await business.postpaid_invoice_totals(
            _month_instants(months[-AVERAGE_MONTHS])[0], until
        )
        new_tenants = await business.tenants_created(since, until)
        at_start = await business.tenants_created(None, since)
        churned = len(await business.churned(since, until))
        customers = await business.customers(until)
        by_item = await business.revenue_by_item(since, until)
    currency = ctx.deps.config.billing_currency
    billed = {s: v for s, v in issued.items() if s not in _UNBILLED}
    count = sum(n for n, _ in billed.values())
    average = sum(total for _, total in billed.values()) // count if count else 0
    overdue_count, overdue_total = billed.get("overdue", (0, 0))
    mrr = figures.monthly_recurring(
        [price for _, price in subscriptions],
        [figures.average(totals) for totals in postpaid.values()],
    )
    rate = figures.churn_rate(churned, at_start)

    def money(micros: int) -> str:
        return amount_str(micros, currency)

    data: dict[str, Any] = {
        "period": {"from": period.start.isoformat(), "to": period.end.isoformat()},
        "currency": currency,
        "revenue": money(revenue),
        "invoices": count,
        "paid": billed.get("paid", (0, 0))[0],
        "unpaid": billed.get("sent", (0, 0))[0] + overdue_count,
        "overdue": overdue_count,
        "overdue_amount": money(overdue_total),
        "cancelled": issued.get("cancelled", (0, 0))[0],
        "average_invoice": money(average),
        "mrr": money(mrr),
        "arr": money(figures.annual_recurring(mrr)),
        "active_subscriptions": len(subscriptions),
        "postpaid_tenants_billed": len(postpaid),
        "new_tenants": new_tenants,
        "churned_tenants": churned,
        "tenants_at_start": at_start,
        "churn_rate": str(rate) if rate is not None else None,
        "customers": customers,
        "arpu": money(figures.per_customer(revenue, customers)),
        "revenue_by_pack": {name: money(v) for kind, name, v in by_item if kind == "pack"},
        "revenue_by_plan": {name: money(v) for kind, name, v in by_item if kind == "plan"},
        "revenue_by_month": {m: money(v) for m, v in zip(months, monthly, strict=True)},
    }
    t = translator(ctx)
    places = minor_places(currency)
    pattern = "0." + "0" * places if places else "0"

    def shown(amount: str) -> str:
        """An amount of ``data`` in the reader's language, with the currency's places."""
        return f"{t.number(Decimal(amount), pattern)} {currency}"

    num = t.number
    lines = [
        # Dates as ISO 8601: one form for a period in every language.
        t("Billing {start} to {end}", start=period.start.isoformat(), end=period.end.isoformat()),
        t("Revenue paid: {amount}", amount=shown(data["revenue"])),
        t(
            "Invoices issued: {count} (paid {paid}, unpaid {unpaid})",
            count=num(data["invoices"]),
            paid=num(data["paid"]),
            unpaid=num(data["unpaid"]),
        ),
        t(
            "Overdue: {count} for {amount}",
            count=num(data["overdue"]),
            amount=shown(data["overdue_amount"]),
        ),
        t("Average invoice: {amount}", amount=shown(data["average_invoice"])),
        t(
            "MRR: {mrr} · ARR: {arr} ({subscriptions}, {postpaid})",
            mrr=shown(data["mrr"]),
            arr=shown(data["arr"]),
            subscriptions=t.ngettext("{n} subscription", "{n} subscriptions", len(subscriptions)),
            postpaid=t.ngettext("{n} postpaid tenant", "{n} postpaid tenants", len(postpaid)),
        ),
        t(
            "Tenants: {new} new, {churned} churned of {at_start} at the start (churn rate {rate})",
            new=num(new_tenants),
            churned=num(churned),
            at_start=num(at_start),
            rate=_percent(t, rate),
        ),
        t(
            "ARPU: {amount} over {customers}",
            amount=shown(data["arpu"]),
            customers=t.ngettext("{n} customer", "{n} customers", customers),
        ),
        _breakdown(t, t("Revenue by pack"), data["revenue_by_pack"], shown),
        _breakdown(t, t("Revenue by plan"), data["revenue_by_plan"], shown),
    ]
    files = await chart_files(
        ctx,
        f"revenue-{period.end:%Y-%m}.png",
        charts.monthly_revenue,
        t("Revenue per month ({currency})", currency=currency),
        months,
        [from_micros(v).quantize(Decimal(1).scaleb(-places)) for v in monthly],
        currency,
        t,
    )
    return CommandResult("\n".join(lines), data=data, files=files)


def _percent(t: Translator, rate: Decimal | None) -> str:
    """``0.0833`` → ``8.33 %`` (``8,33 %``); ``—`` when there is no rate."""
    if rate is None:
        return "—"
    return t.number((rate * 100).quantize(Decimal("0.01")), "0.00") + " %"


def _breakdown(
    t: Translator, title: str, amounts: dict[str, str], shown: Callable[[str], str]
) -> str:
    if not amounts:
        return t("{title}: none", title=title)
    return t(
        "{title}: {amounts}",
        title=title,
        amounts=", ".join(f"{name} {shown(value)}" for name, value in amounts.items()),
    )


def _last_months(end: date, count: int) -> list[str]:
    """``YYYY-MM`` of the ``count`` months ending with ``end``'s, oldest first."""
    year, month = end.year, end.month
    found = []
    for _ in range(count):
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return found[::-1]


def _month_instants(label: str) -> tuple[datetime, datetime]:
    first, last = month_bounds(int(label[:4]), int(label[5:]))
    return _instants(Period(first, last, label))
