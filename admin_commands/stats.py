"""Platform statistics: ``/stats [PERIOD]`` and ``/stats tenants|tenant|models|assistants|top``.

Figures come from the usage rollups (never raw events), so every variant stays fast with millions
of events. Text is an aligned table in a code block; where a picture helps, a PNG chart goes with
it (a photo in Telegram, an upload in Slack; from the shell only with ``--chart FILE``).
"""

from __future__ import annotations

import asyncio
import csv
import heapq
import io
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from admin_commands import charts
from admin_commands.csv_safe import safe_row
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.reports import code_block as _code_block
from admin_commands.reports import cost as _cost
from admin_commands.reports import count_of
from admin_commands.reports import decimal_str as _decimal
from admin_commands.reports import describe as _describe
from admin_commands.reports import pairs as _pairs
from admin_commands.reports import period_of as _period
from admin_commands.reports import table as _table
from admin_commands.values import slug
from billing.stars.amounts import STARS_CURRENCY, stars_in_billing_micros
from core.envelope import OutboundFile
from core.money import from_micros
from core.period import Period
from storage.models import Assistant, Member, Tenant
from storage.repositories.payments import revenue_micros
from storage.repositories.rollups import RollupRepository, Sums
from storage.repositories.tenants import TenantRepository
from storage.states import TENANT_STATUSES

READ = "stats.read"
#: Rows shown in chat before the rest goes to an attached CSV.
TABLE_ROWS = 25
TOP = 10

commands = CommandGroup()
PERIOD = Arg("period", nargs="?", default="30d", metavar="7d|30d|90d|YYYY-MM")
CHART = Arg("--chart", metavar="FILE", help="from the shell: write the PNG chart to FILE")


@commands.command("stats", permission=READ, arguments=[PERIOD, CHART])
async def overview(ctx: CommandContext) -> CommandResult:
    """Platform totals for a period: tenants, library, users, tokens, cost, turns, revenue."""
    period = _period(ctx)
    today = ctx.deps.clock().date()
    async with ctx.deps.sessions() as session:
        statuses = await _tenants_by_status(session)
        library_items = int(
            (
                await session.execute(select(func.coalesce(func.sum(Tenant.library_seq), 0)))
            ).scalar_one()
        )
        active_today = await _active_members_since(session, today)
        rollups = RollupRepository(session)
        total = await rollups.overall(period)
        series = await rollups.per_day(period)
        currency = ctx.deps.config.billing_currency
        received = await revenue_micros(session, *_instants(period), currency)
        # Stars are their own currency (XTR); the total counts them at STARS_TO_BILLING_RATE.
        stars = await revenue_micros(session, *_instants(period), STARS_CURRENCY)
        received += stars_in_billing_micros(stars, ctx.deps.config.stars_to_billing_rate)
        revenue = from_micros(received).quantize(Decimal("0.01"))
    cost = _cost(ctx, total)
    data = {
        "period": {"from": period.start.isoformat(), "to": period.end.isoformat()},
        "tenants": {status: statuses.get(status, 0) for status in ("active", "trial", "suspended")},
        "library_items": library_items,
        "active_users_today": active_today,
        "tokens": {"input": total.input_tokens, "output": total.output_tokens},
        "cost": _decimal(cost),
        "currency": currency,
        "turns": total.turns,
        "failed_calls": total.failed,
        "revenue": str(revenue),
    }
    text = _code_block(
        [
            f"Switchboard, {_describe(period)}",
            "",
            *_pairs(
                [
                    (
                        "Tenants",
                        f"{statuses.get('active', 0):,} active · {statuses.get('trial', 0):,} "
                        f"trial · {statuses.get('suspended', 0):,} suspended",
                    ),
                    ("Library items", f"{library_items:,}"),
                    ("Active users today", f"{active_today:,}"),
                    ("Tokens in / out", f"{total.input_tokens:,} / {total.output_tokens:,}"),
                    ("Cost", f"{_decimal(cost)} {currency}"),
                    ("Turns", f"{total.turns:,} ({total.failed:,} failed)"),
                    ("Revenue", f"{revenue} {currency}"),
                ]
            ),
        ]
    )
    title = (
        f"Tokens and cost per day, {_describe(period)}: "
        f"{total.input_tokens + total.output_tokens:,} tokens, {_decimal(cost)} {currency}"
    )
    files = await chart_files(
        ctx, "stats.png", charts.daily_usage, *_daily_args(ctx, title, series, currency)
    )
    return _result(ctx, text, data, files)


@commands.command("stats tenants", permission=READ, arguments=[PERIOD, CHART])
async def tenants(ctx: CommandContext) -> CommandResult:
    """Every tenant: status, library items, tokens, cost and last activity (CSV when long)."""
    period = _period(ctx)
    async with ctx.deps.sessions() as session:
        usage = await RollupRepository(session).by_tenant(period, ctx.deps.clock().date())
        everyone = (await session.execute(select(*_TENANT_COLUMNS))).all()
    currency = ctx.deps.config.billing_currency
    empty = Sums()
    costed = [(t, s, _cost(ctx, s)) for t in everyone for s in (usage.get(t.id, empty),)]
    costed.sort(key=lambda item: (item[2], item[1].input_tokens + item[1].output_tokens))
    rows = [_tenant_row(ctx, t, s, cost) for t, s, cost in reversed(costed)]
    header = ["tenant", "slug", "status", "items", "tokens", f"cost {currency}", "last activity"]
    shown = [
        [
            r["name"][:24],
            r["slug"],
            r["status"],
            f"{r['items']:,}",
            f"{r['tokens']:,}",
            r["cost"],
            r["last_activity"] or "never",
        ]
        for r in rows[:TABLE_ROWS]
    ]
    lines = [f"Tenants, {_describe(period)} ({len(rows):,})", "", *_table(header, shown)]
    files: list[OutboundFile] = []
    if len(rows) > TABLE_ROWS:
        lines.append(f"… {len(rows) - TABLE_ROWS:,} more in tenants.csv")
        files.append(_csv("tenants.csv", rows))
    charted = rows[:TOP]
    files += await chart_files(
        ctx,
        "stats-tenants.png",
        charts.ranked_bars,
        f"Cost by tenant, {_describe(period)}",
        [str(r["name"])[:24] for r in charted],
        [Decimal(str(r["cost"])) for r in charted],
        currency,
    )
    return _result(ctx, _code_block(lines), rows, files)


@commands.command(
    "stats tenant", permission=READ, arguments=[Arg("slug", type=slug), PERIOD, CHART]
)
async def tenant(ctx: CommandContext) -> CommandResult:
    """One tenant's usage by day and by model."""
    period = _period(ctx)
    async with ctx.deps.sessions() as session:
        found = await TenantRepository(session).get(ctx.args.slug)
        rollups = RollupRepository(session)
        series = await rollups.per_day(period, tenant_id=found.id)
        models = await rollups.by_model(period, tenant_id=found.id)
    currency = ctx.deps.config.billing_currency
    total = Sums()
    for sums in series.values():
        total.merge(sums)
    cost = _cost(ctx, total)
    header = ["model", "turns", "tokens in", "tokens out", f"cost {currency}"]
    model_rows = sorted(models.items(), key=lambda kv: _cost(ctx, kv[1]), reverse=True)
    lines = [
        f"{found.name} ({found.slug}), {_describe(period)}",
        f"{found.status}, {found.plan}, balance {found.token_balance:,} tokens",
        f"{count_of(total.turns, 'turn')} ({total.failed:,} failed), "
        f"{total.input_tokens:,} in / {total.output_tokens:,} out, {_decimal(cost)} {currency}",
        "",
        *_table(
            header,
            [
                [
                    f"{p}/{m}",
                    f"{s.turns:,}",
                    f"{s.input_tokens:,}",
                    f"{s.output_tokens:,}",
                    _decimal(_cost(ctx, s)),
                ]
                for (p, m), s in model_rows
            ],
        ),
    ]
    data = {
        "tenant": found.slug,
        "period": {"from": period.start.isoformat(), "to": period.end.isoformat()},
        "turns": total.turns,
        "failed_calls": total.failed,
        "tokens": {"input": total.input_tokens, "output": total.output_tokens},
        "cost": _decimal(cost),
        "currency": currency,
        "models": [_model_json(ctx, p, m, s) for (p, m), s in model_rows],
        "days": [
            {"day": d.isoformat(), "tokens": s.input_tokens + s.output_tokens}
            for d, s in series.items()
        ],
    }
    title = f"{found.name}, {_describe(period)}: {_decimal(cost)} {currency}"
    files = await chart_files(
        ctx,
        f"stats-{found.slug}.png",
        charts.daily_usage,
        *_daily_args(ctx, title, series, currency),
    )
    return _result(ctx, _code_block(lines), data, files)


@commands.command("stats models", permission=READ, arguments=[PERIOD, CHART])
async def models(ctx: CommandContext) -> CommandResult:
    """Usage and cost by model."""
    period = _period(ctx)
    async with ctx.deps.sessions() as session:
        by_model = await RollupRepository(session).by_model(period)
    currency = ctx.deps.config.billing_currency
    rows = sorted(by_model.items(), key=lambda kv: _cost(ctx, kv[1]), reverse=True)
    header = ["model", "turns", "failed", "tokens in", "tokens out", f"cost {currency}"]
    table = [
        [
            f"{p}/{m}",
            f"{s.turns:,}",
            f"{s.failed:,}",
            f"{s.input_tokens:,}",
            f"{s.output_tokens:,}",
            _decimal(_cost(ctx, s)),
        ]
        for (p, m), s in rows
    ]
    lines = [f"Models, {_describe(period)}", "", *(_table(header, table) or ["No usage."])]
    files = await chart_files(
        ctx,
        "stats-models.png",
        charts.ranked_bars,
        f"Cost by model, {_describe(period)}",
        [m for (_p, m), _s in rows[:TOP]],
        [_cost(ctx, s) for _k, s in rows[:TOP]],
        currency,
    )
    return _result(
        ctx, _code_block(lines), [_model_json(ctx, p, m, s) for (p, m), s in rows], files
    )


@commands.command("stats assistants", permission=READ, arguments=[PERIOD, CHART])
async def assistants(ctx: CommandContext) -> CommandResult:
    """Per assistant: uses, tenants, tokens, cost, mean latency, success rate."""
    period = _period(ctx)
    async with ctx.deps.sessions() as session:
        by_assistant = await RollupRepository(session).by_assistant(period)
        names = {a.id: a.slug for a in (await session.execute(select(Assistant))).scalars()}
    currency = ctx.deps.config.billing_currency
    rows: list[dict[str, Any]] = [
        {
            "assistant": names.get(aid, "(none)"),
            "uses": s.turns,
            "tenants": used_by,
            "tokens": s.input_tokens + s.output_tokens,
            "cost": _decimal(_cost(ctx, s)),
            "currency": currency,
            "mean_latency_ms": round(s.mean_latency_ms),
            "success_rate": round(s.success_rate, 4),
        }
        for aid, (s, used_by) in by_assistant.items()
    ]
    rows.sort(key=lambda r: (r["uses"], r["assistant"]), reverse=True)
    header = ["assistant", "uses", "tenants", "tokens", f"cost {currency}", "mean ms", "success"]
    table = [
        [
            str(r["assistant"]),
            f"{r['uses']:,}",
            f"{r['tenants']:,}",
            f"{r['tokens']:,}",
            str(r["cost"]),
            f"{r['mean_latency_ms']:,}",
            f"{float(r['success_rate']):.1%}",
        ]
        for r in rows
    ]
    lines = [f"Assistants, {_describe(period)}", "", *(_table(header, table) or ["No usage."])]
    files = await chart_files(
        ctx,
        "stats-assistants.png",
        charts.ranked_bars,
        f"Cost by assistant, {_describe(period)}",
        [str(r["assistant"]) for r in rows[:TOP]],
        [Decimal(str(r["cost"])) for r in rows[:TOP]],
        currency,
    )
    return _result(ctx, _code_block(lines), rows, files)


@commands.command("stats top", permission=READ, arguments=[PERIOD, CHART])
async def top(ctx: CommandContext) -> CommandResult:
    """The ten tenants that cost most in the period."""
    period = _period(ctx)
    async with ctx.deps.sessions() as session:
        config = ctx.deps.config
        usage = await RollupRepository(session).top_tenants(
            period,
            ctx.deps.clock().date(),
            currency=config.billing_currency,
            usd_rate=config.usd_to_billing_rate,
            limit=TOP,
        )
        ranked = heapq.nlargest(TOP, usage.items(), key=lambda kv: _cost(ctx, kv[1]))
        known = {
            t.id: t
            for t in (
                await session.execute(select(Tenant).where(Tenant.id.in_([i for i, _ in ranked])))
            ).scalars()
        }
    currency = ctx.deps.config.billing_currency
    rows: list[dict[str, Any]] = [
        {
            "slug": known[tid].slug,
            "name": known[tid].name,
            "tokens": s.input_tokens + s.output_tokens,
            "cost": _decimal(_cost(ctx, s)),
            "currency": currency,
        }
        for tid, s in ranked
        if tid in known
    ]
    header = ["#", "tenant", "tokens", f"cost {currency}"]
    table = [
        [str(n), f"{r['name'][:24]} ({r['slug']})", f"{r['tokens']:,}", str(r["cost"])]
        for n, r in enumerate(rows, 1)
    ]
    lines = [f"Top {TOP} tenants by cost, {_describe(period)}", ""]
    lines += _table(header, table) or ["No usage."]
    files = await chart_files(
        ctx,
        "stats-top.png",
        charts.ranked_bars,
        f"Top {TOP} tenants by cost, {_describe(period)}",
        [str(r["name"])[:24] for r in rows],
        [Decimal(str(r["cost"])) for r in rows],
        currency,
    )
    return _result(ctx, _code_block(lines), rows, files)


# -- helpers ---------------------------------------------------------------------------------------


def _instants(period: Period) -> tuple[datetime, datetime]:
    """The period as ``[since, until)`` in UTC instants."""
    return (
        datetime.combine(period.start, time(), tzinfo=UTC),
        datetime.combine(period.end + timedelta(days=1), time(), tzinfo=UTC),
    )


def _model_json(ctx: CommandContext, provider: str, model: str, sums: Sums) -> dict[str, Any]:
    return {
        "provider": provider,
        "model": model,
        "turns": sums.turns,
        "failed_calls": sums.failed,
        "tokens": {"input": sums.input_tokens, "output": sums.output_tokens},
        "cost": _decimal(_cost(ctx, sums)),
        "currency": ctx.deps.config.billing_currency,
    }


_TENANT_COLUMNS = (
    Tenant.id,
    Tenant.name,
    Tenant.slug,
    Tenant.status,
    Tenant.library_seq,
    Tenant.last_activity_at,
)


def _tenant_row(ctx: CommandContext, tenant: Any, sums: Sums, cost: Decimal) -> dict[str, Any]:
    return {
        "name": tenant.name,
        "slug": tenant.slug,
        "status": tenant.status,
        "items": tenant.library_seq,
        "tokens": sums.input_tokens + sums.output_tokens,
        "cost": _decimal(cost),
        "currency": ctx.deps.config.billing_currency,
        "last_activity": tenant.last_activity_at.date().isoformat()
        if tenant.last_activity_at
        else None,
    }


async def _tenants_by_status(session: AsyncSession) -> dict[str, int]:
    query = select(Tenant.status, func.count(Tenant.id)).group_by(Tenant.status)
    counts = {str(s): int(n) for s, n in (await session.execute(query)).all()}
    return {status: counts.get(status, 0) for status in TENANT_STATUSES}


async def _active_members_since(session: AsyncSession, day: date) -> int:
    since = datetime.combine(day, time(), tzinfo=UTC)
    query = select(func.count(Member.id)).where(Member.last_seen_at >= since)
    return int((await session.execute(query)).scalar_one())


def _csv(name: str, rows: Sequence[Mapping[str, Any]]) -> OutboundFile:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(rows[0])
    writer.writerows(safe_row(row.values()) for row in rows)
    return OutboundFile(name, buffer.getvalue().encode(), "text/csv")


def _daily_args(
    ctx: CommandContext, title: str, series: Mapping[date, Sums], currency: str
) -> tuple[Any, ...]:
    """The arguments of :func:`charts.daily_usage` (costs converted here, on the loop)."""
    days = list(series)
    return (
        title,
        days,
        [series[d].input_tokens for d in days],
        [series[d].output_tokens for d in days],
        [_cost(ctx, series[d]) for d in days],
        currency,
    )


async def chart_files(
    ctx: CommandContext, name: str, render: Callable[..., bytes], *args: Any
) -> list[OutboundFile]:
    """Render off the event loop. From the shell a chart is drawn only for ``--chart FILE``."""
    chart_file: str | None = getattr(ctx.args, "chart", None)
    shell = ctx.caller.channel == "shell"
    if chart_file and not shell:
        raise ctx.usage_error("--chart FILE is for the shell; in chat the chart comes by itself.")
    if shell and not chart_file:
        return []
    png = await asyncio.to_thread(render, *args)
    if chart_file:
        await asyncio.to_thread(Path(chart_file).write_bytes, png)
        return []
    return [OutboundFile(name, png, "image/png")]


def _result(ctx: CommandContext, text: str, data: Any, files: list[OutboundFile]) -> CommandResult:
    chart_file: str | None = getattr(ctx.args, "chart", None)
    if chart_file and isinstance(data, dict):
        data = {**data, "chart": chart_file}
    return CommandResult(text, data=data, files=files)
