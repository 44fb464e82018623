"""``/assistant stats [SLUG] [PERIOD]``: how each assistant is used and how fast it answers.

Sums and means come from the rollups; the p95 latency needs the calls themselves, read one
assistant at a time with a bounded query (a count, then one row at the 95th rank).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from admin_commands.language import translator
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.reports import (
    code_block,
    cost,
    decimal_str,
    describe,
    percent_str,
    period_of,
    table,
)
from admin_commands.values import slug
from core.period import Period
from storage.repositories.assistants import AssistantRepository
from storage.repositories.rollups import RollupRepository, Sums
from storage.repositories.usage import UsageRepository

PERCENTILE = 95
#: What reads as a period rather than an assistant: ``/assistant stats 30d`` is a period.
_PERIOD_SHAPE = re.compile(r"^(\d{1,3}d|\d{4}-\d{2})$")

commands = CommandGroup()


@commands.command(
    "assistant stats",
    permission="stats.read",
    arguments=[
        Arg("slug", nargs="?", type=slug),
        Arg("period", nargs="?", metavar="7d|30d|90d|YYYY-MM"),
    ],
)
async def assistant_stats(ctx: CommandContext) -> CommandResult:
    """Per assistant: uses, tenants, tokens, cost, mean and p95 latency, success rate."""
    wanted: str | None = ctx.args.slug
    raw_period: str = ctx.args.period or "30d"
    if wanted and ctx.args.period is None and _PERIOD_SHAPE.match(wanted):
        raw_period = wanted  # one word that is a period: every assistant in it
        wanted = None
    period = period_of(ctx, raw_period)
    since = datetime.combine(period.start, time(), tzinfo=UTC)
    until = datetime.combine(period.end + timedelta(days=1), time(), tzinfo=UTC)
    async with ctx.deps.sessions() as session:
        assistants = AssistantRepository(session)
        chosen = [await assistants.get(wanted)] if wanted else await assistants.all()
        used = await RollupRepository(session).by_assistant(period)
        usage = UsageRepository(session)
        rows = [
            _row(
                ctx,
                a.slug,
                *used.get(a.id, (Sums(), 0)),
                await usage.latency_percentile(a.id, since, until, PERCENTILE)
                if a.id in used
                else None,
            )
            for a in chosen
        ]
    if not wanted:
        rows.sort(key=lambda r: (-r["uses"], r["assistant"]))
    return CommandResult(_text(ctx, period, rows), data=rows[0] if wanted else rows)


def _row(
    ctx: CommandContext, name: str, sums: Sums, tenants: int, p95: int | None
) -> dict[str, Any]:
    return {
        "assistant": name,
        "uses": sums.turns,
        "tenants": tenants,
        "tokens": sums.input_tokens + sums.output_tokens,
        "cost": decimal_str(cost(ctx, sums)),
        "currency": ctx.deps.config.billing_currency,
        "mean_latency_ms": round(sums.mean_latency_ms),
        "p95_latency_ms": p95,
        "success_rate": round(sums.success_rate, 4),
    }


def _text(ctx: CommandContext, period: Period, rows: list[dict[str, Any]]) -> str:
    currency = ctx.deps.config.billing_currency
    t = translator(ctx)
    header = [
        t("assistant"),
        t("uses"),
        t("tenants"),
        t("tokens"),
        t("cost {currency}", currency=currency),
        t("mean ms"),
        t("p95 ms"),
        t("success"),
    ]
    cells = [
        [
            str(r["assistant"]),
            t.number(r["uses"]),
            t.number(r["tenants"]),
            t.number(r["tokens"]),
            decimal_str(Decimal(r["cost"]), t),
            t.number(r["mean_latency_ms"]),
            t.number(r["p95_latency_ms"]) if r["p95_latency_ms"] is not None else "-",
            percent_str(t, r["success_rate"]) if r["uses"] else "-",
        ]
        for r in rows
    ]
    title = t("Assistants, {period}", period=describe(period, t))
    return code_block([title, "", *table(header, cells)])
