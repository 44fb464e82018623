"""``/export usage|library|ledger [SLUG] [--period P]``: CSV files of the raw records.

Rows are streamed from the database in batches and written to a temporary file batch by batch,
so a million rows are never in memory. In chat the file is sent as a document; from the shell the
CSV goes to stdout, or to ``--out FILE``.

The usage export holds exactly the calls ``/stats`` counts (settled and failed), with each cost
as recorded and converted to the billing currency as ``/stats`` converts it, so its sums match
``/stats tenant SLUG PERIOD``. The ledger export's ``tokens`` of one tenant sum to its balance.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from admin_commands.csv_safe import safe_cell
from admin_commands.language import translator
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.reports import billing_amount, describe, period_of
from admin_commands.values import slug
from billing.amounts import amount_str
from billing.invoicing.arithmetic import rate_of
from billing.invoicing.views import quantity_json
from core.envelope import OutboundFile
from core.i18n import N_, lazy
from core.money import from_micros
from core.period import Period
from storage.repositories.exports import ExportFilter, ExportRepository
from storage.repositories.tenants import TenantRepository

commands = CommandGroup()

Row = tuple[Any, ...]
MICRO = Decimal("0.000001")
Batches = AsyncIterator[Sequence[Row]]
#: Each export's name in a reply and a file's caption (the command words stay English).
_TITLES = {
    "usage": N_("Usage export"),
    "invoices": N_("Invoices export"),
    "library": N_("Library export"),
    "ledger": N_("Ledger export"),
}


@dataclass(frozen=True, slots=True)
class _Kind:
    name: str
    header: tuple[str, ...]
    rows: Callable[[ExportRepository, ExportFilter], Batches]
    #: Turns a database row into CSV cells (given the command, for the billing currency).
    cells: Callable[[CommandContext, Row], list[Any]]


ARGUMENTS = [
    Arg("slug", nargs="?", type=slug),
    Arg("--period", metavar="YYYY-MM", help="a month (or 7d, 30d, 90d); default: everything"),
    Arg("--out", metavar="FILE", help="from the shell: write the CSV to FILE, not stdout"),
]


def _usage_cells(ctx: CommandContext, row: Row) -> list[Any]:
    *head, cost_micros, currency, priced, latency, key, cache_writes, estimated, report = row
    billing = billing_amount(ctx, currency, cost_micros)
    return [
        *head,
        from_micros(cost_micros),
        currency,
        billing.quantize(MICRO),
        ctx.deps.config.billing_currency,
        priced,
        latency,
        key,
        cache_writes,
        estimated,
        report,
    ]


def _plain_cells(ctx: CommandContext, row: Row) -> list[Any]:
    return list(row)


USAGE = _Kind(
    "usage",
    (
        "created_at",
        "tenant",
        "assistant",
        "provider",
        "model",
        "kind",
        "status",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "charged_tokens",
        "overdraft_tokens",
        "cost",
        "cost_currency",
        "billing_cost",
        "billing_currency",
        "priced",
        "latency_ms",
        "idempotency_key",
        # Appended, so that scripts reading columns by position keep working.
        "cache_write_tokens",
        "estimated",
        "usage_report",
    ),
    ExportRepository.usage,
    _usage_cells,
)
LIBRARY = _Kind(
    "library",
    (
        "id",
        "tenant",
        "created_at",
        "kind",
        "title",
        "assistant",
        "archived",
        "mime_type",
        "media_path",
        "text",
    ),
    ExportRepository.library,
    _plain_cells,
)


def _invoice_cells(ctx: CommandContext, row: Row) -> list[Any]:
    """Amounts in the invoice's currency with its decimals, as ``/invoice show --json``."""
    (number, tenant, status, issued, due, paid, currency, position, description, quantity,
     unit_price, amount, subtotal, vat_rate, vat, total) = row  # fmt: skip
    return [
        number, tenant, status, issued, due, paid, currency, position, description,
        quantity_json(quantity), amount_str(unit_price, currency), amount_str(amount, currency),
        amount_str(subtotal, currency), str(rate_of(vat_rate)), amount_str(vat, currency),
        amount_str(total, currency),
    ]  # fmt: skip


INVOICES = _Kind(
    "invoices",
    (
        "number",
        "tenant",
        "status",
        "issued_at",
        "due_at",
        "paid_at",
        "currency",
        "line",
        "description",
        "quantity",
        "unit_price",
        "amount",
        "subtotal",
        "vat_rate",
        "vat",
        "total",
    ),
    ExportRepository.invoice_lines,
    _invoice_cells,
)
LEDGER = _Kind(
    "ledger",
    ("created_at", "tenant", "kind", "tokens", "balance_after", "reference", "note", "actor"),
    ExportRepository.ledger,
    _plain_cells,
)


@commands.command("export usage", permission="stats.read", arguments=ARGUMENTS)
async def export_usage(ctx: CommandContext) -> CommandResult:
    """Every finished provider call as CSV: tokens, cost, latency (the figures behind /stats)."""
    return await _export(ctx, USAGE)


@commands.command("export invoices", permission="stats.read", arguments=ARGUMENTS)
async def export_invoices(ctx: CommandContext) -> CommandResult:
    """Invoices issued in the period as CSV, a row per line (the figures behind /stats billing)."""
    return await _export(ctx, INVOICES)


@commands.command("export library", permission="content.export", arguments=ARGUMENTS)
async def export_library(ctx: CommandContext) -> CommandResult:
    """Every saved output as CSV, its text included."""
    return await _export(ctx, LIBRARY)


@commands.command("export ledger", permission="ledger.read", arguments=ARGUMENTS)
async def export_ledger(ctx: CommandContext) -> CommandResult:
    """Every token balance change as CSV (a tenant's tokens sum to its balance)."""
    return await _export(ctx, LEDGER)


async def _export(ctx: CommandContext, kind: _Kind) -> CommandResult:
    args = ctx.args
    shell = ctx.caller.channel == "shell"
    if args.out and not shell:
        raise ctx.usage_error(
            lazy("--out FILE is for the shell; in chat the file comes by itself.")
        )
    period = period_of(ctx, args.period) if args.period else None
    where = ExportFilter()
    if period is not None:
        where = ExportFilter(
            since=datetime.combine(period.start, time(), tzinfo=UTC),
            until=datetime.combine(period.end + timedelta(days=1), time(), tzinfo=UTC),
        )
    out = Path(args.out) if args.out else None
    if out is not None and (out.is_dir() or not out.parent.is_dir()):
        raise ctx.usage_error(lazy("--out: cannot write a file at {path}.", path=repr(str(out))))
    # Written beside --out and renamed when complete: a failed export leaves no partial file.
    target = _temporary_file(out.parent if out is not None else None)
    try:
        async with ctx.deps.sessions() as session:
            if args.slug:
                tenant = await TenantRepository(session).get(args.slug)
                where = ExportFilter(tenant.id, where.since, where.until)
            rows = await _write_csv(ctx, kind, kind.rows(ExportRepository(session), where), target)
        if out is not None:
            await asyncio.to_thread(os.replace, target, out)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    name = f"{kind.name}-{args.slug or 'all'}-{period.label if period else 'all'}.csv"
    t = translator(ctx)
    who = args.slug or t("all tenants")
    when = describe(period, t) if period else t("all time")
    scope = f"{who}, {when}"
    summary = t.ngettext(
        "{title} ({scope}): {n} row",
        "{title} ({scope}): {n} rows",
        rows,
        title=t(_TITLES[kind.name]),
        scope=scope,
    )
    data: dict[str, Any] = {
        "export": kind.name,
        "tenant": args.slug,
        "period": _period_json(period),
        "rows": rows,
        "columns": list(kind.header),
        "file": args.out,
    }
    if args.out:
        return CommandResult(
            t("{summary}, written to {file}.", summary=summary, file=args.out), data=data
        )
    file = OutboundFile.on_disk(target, name, "text/csv", caption=summary, temporary=True)
    if shell:
        return CommandResult(summary + ".", data=data, output=file)
    return CommandResult("", data=data, files=[file])


def _temporary_file(directory: Path | None) -> Path:
    handle, name = tempfile.mkstemp(prefix="switchboard-export-", suffix=".csv", dir=directory)
    os.close(handle)
    return Path(name)


def _period_json(period: Period | None) -> dict[str, str] | None:
    if period is None:
        return None
    return {"from": period.start.isoformat(), "to": period.end.isoformat()}


async def _write_csv(ctx: CommandContext, kind: _Kind, batches: Batches, target: Path) -> int:
    """Write the header and every batch to ``target``; returns the number of rows.

    Each batch is formatted on the loop (it is small) and written in a thread, so a slow disk
    never stalls other chats.
    """
    written = 0
    out: TextIO = await asyncio.to_thread(target.open, "w", newline="", encoding="utf-8")
    try:
        await asyncio.to_thread(out.write, _csv_text([kind.header]))
        async for batch in batches:
            text = _csv_text([[_cell(c) for c in kind.cells(ctx, row)] for row in batch])
            await asyncio.to_thread(out.write, text)
            written += len(batch)
    finally:
        await asyncio.to_thread(out.close)
    return written


def _csv_text(rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return safe_cell(value)
