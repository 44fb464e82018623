"""``/stats billing [PERIOD]`` and ``/export invoices [SLUG] [--period YYYY-MM]``.

Both count invoices issued in the period (drafts left out: nothing was billed yet); revenue is
what was paid in the period. The CSV has a row per invoice line, so its per-invoice totals add up
to the figures of ``/stats billing``.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from admin_commands.csv_safe import safe_cell
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.values import slug
from billing.amounts import amount_str
from billing.invoice_views import InvoiceView
from core.envelope import OutboundFile
from core.period import Period, parse_period

commands = CommandGroup()
READ = "stats.read"
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
    invoices = ctx.deps.invoices
    issued = [
        v for v in await invoices.search(since=since, until=until) if v.invoice.status != "draft"
    ]
    paid_in_period = await invoices.paid_between(since, until)
    currency = ctx.deps.config.billing_currency
    billed = [v for v in issued if v.invoice.status != "cancelled"]
    overdue = [v for v in billed if v.invoice.status == "overdue"]
    revenue = sum(v.invoice.total_micros for v in paid_in_period)
    average = sum(v.invoice.total_micros for v in billed) // len(billed) if billed else 0
    data: dict[str, Any] = {
        "period": {"from": period.start.isoformat(), "to": period.end.isoformat()},
        "currency": currency,
        "revenue": amount_str(revenue, currency),
        "invoices": len(billed),
        "paid": sum(v.invoice.status == "paid" for v in billed),
        "unpaid": sum(v.invoice.status in ("sent", "overdue") for v in billed),
        "overdue": len(overdue),
        "overdue_amount": amount_str(sum(v.invoice.total_micros for v in overdue), currency),
        "cancelled": len(issued) - len(billed),
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


@commands.command(
    "export invoices",
    permission=READ,
    arguments=[
        Arg("slug", nargs="?", type=slug),
        Arg("--period", metavar="YYYY-MM"),
        Arg("--out", metavar="FILE", help="from the shell: write the CSV to FILE"),
    ],
)
async def export(ctx: CommandContext) -> CommandResult:
    """Invoices as CSV, a row per line: a file in chat; from the shell stdout or --out FILE."""
    shell = ctx.caller.channel == "shell"
    if ctx.args.out and not shell:
        raise ctx.usage_error("--out FILE is for the shell; in chat the CSV comes as a file.")
    since = until = None
    label = "all"
    if ctx.args.period:
        period = _period(ctx, ctx.args.period)
        since, until = _instants(period)
        label = period.label
    found = await ctx.deps.invoices.search(slug=ctx.args.slug, since=since, until=until)
    rows = [row for view in reversed(found) for row in csv_rows(view)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    writer.writerows({k: safe_cell(v) for k, v in row.items()} for row in rows)
    content = buffer.getvalue()
    name = f"invoices-{ctx.args.slug or 'all'}-{label}.csv"
    data = {"invoices": len(found), "rows": len(rows), "file": ctx.args.out or name}
    if shell:
        if ctx.args.out:
            await asyncio.to_thread(Path(ctx.args.out).write_text, content, encoding="utf-8")
            return CommandResult(f"{len(rows)} rows written to {ctx.args.out}.", data=data)
        return CommandResult(content.rstrip("\n"), data=data | {"csv": content})
    summary = f"{len(found)} invoices, {len(rows)} lines."
    return CommandResult(
        summary, data=data, files=[OutboundFile(name, content.encode(), "text/csv")]
    )


def csv_rows(view: InvoiceView) -> list[dict[str, Any]]:
    doc = view.to_json()
    head = {k: doc[k] or "" for k in ("number", "tenant", "status", "issued_at", "due_at",
                                      "paid_at", "currency", "subtotal", "vat_rate", "vat",
                                      "total")}  # fmt: skip
    return [
        head
        | {
            "line": n,
            **{k: line[k] for k in ("description", "quantity", "unit_price", "amount")},
        }
        for n, line in enumerate(doc["lines"], start=1)
    ]
