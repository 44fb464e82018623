"""``/stats billing [PERIOD]``: invoices issued in the period (drafts left out: nothing was
billed yet) and revenue paid in it, summed by the database, however many invoices there are.

``/export invoices`` (in ``admin_commands/exports.py``) has a row per invoice line, so its
per-invoice totals add up to these figures.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from billing.amounts import amount_str
from core.period import Period, parse_period
from storage.repositories.invoices import InvoiceRepository
from storage.states import InvoiceStatus

commands = CommandGroup()
READ = "stats.read"
#: Issued invoices that bill nothing: a draft is not sent, a cancelled one is void.
_UNBILLED: tuple[InvoiceStatus, ...] = ("draft", "cancelled")
CSV_FIELDS = (
    "number", "tenant", "status", "issued_at", "due_at", "paid_at", "currency", "line",
    "description", "quantity", "unit_price", "amount", "subtotal", "vat_rate", "vat", "total",
)  # fmt: skip


def _period(ctx: CommandContext, raw: str) -> Period:
    try:
        return parse_period(raw, ctx.deps.clock().date())
    except ValueError as exc:
        raise ctx.usage_error(str(exc).capitalize() + ".") from None


def _instants(period: Period) -> tuple[datetime, datetime]:
    return (
        datetime.combine(period.start, time(), tzinfo=UTC),
        datetime.combine(period.end + timedelta(days=1), time(), tzinfo=UTC),
    )


@commands.command(
    "stats billing",
    permission=READ,
    arguments=[Arg("period", nargs="?", default="30d", metavar="7d|30d|90d|YYYY-MM")],
)
async def billing(ctx: CommandContext) -> CommandResult:
    """Invoicing for a period: revenue paid, paid and unpaid counts, overdue, average invoice."""
    period = _period(ctx, ctx.args.period)
    since, until = _instants(period)
    async with ctx.deps.sessions() as session:
        invoices = InvoiceRepository(session)
        issued = await invoices.issued_by_status(since, until)
        revenue = await invoices.paid_total(since, until)
    currency = ctx.deps.config.billing_currency
    billed = {s: v for s, v in issued.items() if s not in _UNBILLED}
    count = sum(n for n, _ in billed.values())
    average = sum(total for _, total in billed.values()) // count if count else 0
    overdue_count, overdue_total = billed.get("overdue", (0, 0))
    data: dict[str, Any] = {
        "period": {"from": period.start.isoformat(), "to": period.end.isoformat()},
        "currency": currency,
        "revenue": amount_str(revenue, currency),
        "invoices": count,
        "paid": billed.get("paid", (0, 0))[0],
        "unpaid": billed.get("sent", (0, 0))[0] + overdue_count,
        "overdue": overdue_count,
        "overdue_amount": amount_str(overdue_total, currency),
        "cancelled": issued.get("cancelled", (0, 0))[0],
        "average_invoice": amount_str(average, currency),
    }
    text = "\n".join(
        [
            f"Billing {period.start} to {period.end}",
            f"Revenue paid: {data['revenue']} {currency}",
            f"Invoices issued: {data['invoices']} (paid {data['paid']}, unpaid {data['unpaid']})",
            f"Overdue: {data['overdue']} for {data['overdue_amount']} {currency}",
            f"Average invoice: {data['average_invoice']} {currency}",
        ]
    )
    return CommandResult(text, data=data)
