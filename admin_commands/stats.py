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
from admin_commands.language import translator
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.reports import code_block as _code_block
from admin_commands.reports import cost as _cost
from admin_commands.reports import decimal_str as _decimal
from admin_commands.reports import describe as _describe
from admin_commands.reports import pairs as _pairs
from admin_commands.reports import percent_str
from admin_commands.reports import period_of as _period
from admin_commands.reports import table as _table
from admin_commands.tenants import status_name
from admin_commands.values import slug
from billing.stars.amounts import STARS_CURRENCY, stars_in_billing_micros
from core.envelope import OutboundFile
from core.i18n import N_, Translator, lazy
from core.money import from_micros
from core.period import Period
from storage.models import Assistant, Member, Tenant
from storage.repositories.payments import revenue_micros
from storage.repositories.rollups import RollupRepository, Sums
from storage.repositories.tenants import TenantRepository
from storage.states import TENANT_STATUSES

READ = "stats.read"
#: How usage without an assistant (a direct call) is named, in --json as in tables.
_NO_ASSISTANT = N_("(none)")
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
    t = translator(ctx)
    when = _describe(period, t)
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
            t("Switchboard, {period}", period=when),
            "",
            *_pairs(
                [
                    (
                        t("Tenants"),
                        t(
                            "{active} active · {trial} trial · {suspended} suspended",
                            active=t.number(statuses.get("active", 0)),
                            trial=t.number(statuses.get("trial", 0)),
                            suspended=t.number(statuses.get("suspended", 0)),
                        ),
                    ),
                    (t("Library items"), t.number(library_items)),
                    (t("Active users today"), t.number(active_today)),
                    (
                        t("Tokens in / out"),
                        f"{t.number(total.input_tokens)} / {t.number(total.output_tokens)}",
                    ),
                    (t("Cost"), f"{_decimal(cost, t)} {currency}"),
                    (
                        t("Turns"),
                        t(
                            "{turns} ({failed} failed)",
                            turns=t.number(total.turns),
                            failed=t.number(total.failed),
                        ),
                    ),
                    (t("Revenue"), f"{t.number(revenue, '0.00')} {currency}"),
                ]
            ),
        ]
    )
    title = t(
        "Tokens and cost per day, {period}: {tokens} tokens, {cost} {currency}",
        period=when,
        tokens=t.number(total.input_tokens + total.output_tokens),
        cost=_decimal(cost, t),
        currency=currency,
    )
    files = await chart_files(
        ctx, "stats.png", charts.daily_usage, *_daily_args(ctx, title, series, currency, t)
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
    rows = [_tenant_row(ctx, x, s, cost) for x, s, cost in reversed(costed)]
    t = translator(ctx)
    when = _describe(period, t)
    header = [
        t("tenant"),
        t("slug"),
        t("status"),
        t("items"),
        t("tokens"),
        t("cost {currency}", currency=currency),
        t("last activity"),
    ]
    shown = [
        [
            r["name"][:24],
            r["slug"],
            status_name(t, r["status"]),
            t.number(r["items"]),
            t.number(r["tokens"]),
            _decimal(Decimal(r["cost"]), t),
            r["last_activity"] or t("never"),
        ]
        for r in rows[:TABLE_ROWS]
    ]
    lines = [
        t("Tenants, {period} ({count})", period=when, count=t.number(len(rows))),
        "",
        *_table(header, shown),
    ]
    files: list[OutboundFile] = []
    if len(rows) > TABLE_ROWS:
        lines.append(t("… {count} more in tenants.csv", count=t.number(len(rows) - TABLE_ROWS)))
        files.append(_csv("tenants.csv", rows))
    charted = rows[:TOP]
    files += await chart_files(
        ctx,
        "stats-tenants.png",
        charts.ranked_bars,
        t("Cost by tenant, {period}", period=when),
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
    t = translator(ctx)
    when = _describe(period, t)
    header = [
        t("model"),
        t("turns"),
        t("tokens in"),
        t("tokens out"),
        t("cost {currency}", currency=currency),
    ]
    model_rows = sorted(models.items(), key=lambda kv: _cost(ctx, kv[1]), reverse=True)
    lines = [
        f"{found.name} ({found.slug}), {when}",
        t(
            "{status}, {plan}, balance {balance} tokens",
            status=status_name(t, found.status),
            plan=found.plan,
            balance=t.number(found.token_balance),
        ),
        t(
            "{turns} ({failed} failed), {input} in / {output} out, {cost} {currency}",
            turns=t.ngettext("{n} turn", "{n} turns", total.turns),
            failed=t.number(total.failed),
            input=t.number(total.input_tokens),
            output=t.number(total.output_tokens),
            cost=_decimal(cost, t),
            currency=currency,
        ),
        "",
        *_table(
            header,
            [
                [
                    f"{p}/{m}",
                    t.number(s.turns),
                    t.number(s.input_tokens),
                    t.number(s.output_tokens),
                    _decimal(_cost(ctx, s), t),
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
    title = f"{found.name}, {when}: {_decimal(cost, t)} {currency}"
    files = await chart_files(
        ctx,
        f"stats-{found.slug}.png",
        charts.daily_usage,
        *_daily_args(ctx, title, series, currency, t),
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
    t = translator(ctx)
    when = _describe(period, t)
    header = [
        t("model"),
        t("turns"),
        t("failed"),
        t("tokens in"),
        t("tokens out"),
        t("cost {currency}", currency=currency),
    ]
    table = [
        [
            f"{p}/{m}",
            t.number(s.turns),
            t.number(s.failed),
            t.number(s.input_tokens),
            t.number(s.output_tokens),
            _decimal(_cost(ctx, s), t),
        ]
        for (p, m), s in rows
    ]
    lines = [
        t("Models, {period}", period=when),
        "",
        *(_table(header, table) or [t("No usage.")]),
    ]
    files = await chart_files(
        ctx,
        "stats-models.png",
        charts.ranked_bars,
        t("Cost by model, {period}", period=when),
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
            "assistant": names.get(aid, _NO_ASSISTANT),
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
    t = translator(ctx)
    when = _describe(period, t)

    def named(assistant: str) -> str:
        return t(_NO_ASSISTANT) if assistant == _NO_ASSISTANT else assistant

    header = [
        t("assistant"),
        t("uses"),
        t("tenants"),
        t("tokens"),
        t("cost {currency}", currency=currency),
        t("mean ms"),
        t("success"),
    ]
    table = [
        [
            named(str(r["assistant"])),
            t.number(r["uses"]),
            t.number(r["tenants"]),
            t.number(r["tokens"]),
            _decimal(Decimal(r["cost"]), t),
            t.number(r["mean_latency_ms"]),
            percent_str(t, r["success_rate"]),
        ]
        for r in rows
    ]
    lines = [
        t("Assistants, {period}", period=when),
        "",
        *(_table(header, table) or [t("No usage.")]),
    ]
    files = await chart_files(
        ctx,
        "stats-assistants.png",
        charts.ranked_bars,
        t("Cost by assistant, {period}", period=when),
        [named(str(r["assistant"])) for r in rows[:TOP]],
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
    t = translator(ctx)
    title = t("Top {count} tenants by cost, {period}", count=TOP, period=_describe(period, t))
    header = ["#", t("tenant"), t("tokens"), t("cost {currency}", currency=currency)]
    table = [
        [
            str(n),
            f"{r['name'][:24]} ({r['slug']})",
            t.number(r["tokens"]),
            _decimal(Decimal(r["cost"]), t),
        ]
        for n, r in enumerate(rows, 1)
    ]
    lines = [title, ""]
    lines += _table(header, table) or [t("No usage.")]
    files = await chart_files(
        ctx,
        "stats-top.png",
        charts.ranked_bars,
        title,
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
    ctx: CommandContext, title: str, series: Mapping[date, Sums], currency: str, t: Translator
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
        t,
    )


async def chart_files(
    ctx: CommandContext, name: str, render: Callable[..., bytes], *args: Any
) -> list[OutboundFile]:
    """Render off the event loop. From the shell a chart is drawn only for ``--chart FILE``."""
    chart_file: str | None = getattr(ctx.args, "chart", None)
    shell = ctx.caller.channel == "shell"
    if chart_file and not shell:
        raise ctx.usage_error(
            lazy("--chart FILE is for the shell; in chat the chart comes by itself.")
        )
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
