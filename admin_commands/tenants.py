"""Tenant provisioning, status and terms: ``/tenant create|list|show|suspend|activate``,
``/tenant plan`` and ``/tenant quota``."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from admin_commands.common import audit, money_str, tenant_summary
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.values import email, name, plan_slug, quota, slug
from core.clock import month_start
from core.money import to_micros
from storage.repositories.catalog import PlanRepository
from storage.repositories.payments import SubscriptionRepository
from storage.repositories.tenants import InviteRepository, TenantRepository
from storage.repositories.usage import UsageRepository
from storage.states import TENANT_STATUSES, TenantStatus

WRITE = "tenants.write"
commands = CommandGroup()


@commands.command(
    "tenant create",
    permission=WRITE,
    arguments=[
        Arg("slug", type=slug),
        Arg("--name", required=True, type=name),
        Arg("--email", type=email),
    ],
)
async def create(ctx: CommandContext) -> CommandResult:
    """Provision a tenant; prints its single-use invite code and Telegram link."""
    deps = ctx.deps
    config = deps.config
    now = deps.clock()
    async with deps.sessions.begin() as session:
        tenant = await TenantRepository(session).create(
            slug=ctx.args.slug,
            name=ctx.args.name,
            email=ctx.args.email,
            currency=config.billing_currency,
            vat_rate_ppm=int(config.vat_rate * 1_000_000),
            trial_ends_at=now + timedelta(days=config.trial_days),
        )
        code = await InviteRepository(session).create(tenant, now=now, created_by=ctx.caller.actor)
        await audit(
            session, ctx, "tenant.create", tenant.slug, None, tenant_summary(tenant), tenant=tenant
        )
    return _invite_result(ctx, tenant.slug, tenant.name, code, created=True)


@commands.command("tenant invite", permission=WRITE, arguments=[Arg("slug", type=slug)])
async def invite(ctx: CommandContext) -> CommandResult:
    """Issue a new invite code for an existing tenant."""
    deps = ctx.deps
    async with deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(ctx.args.slug)
        code = await InviteRepository(session).create(
            tenant, now=deps.clock(), created_by=ctx.caller.actor
        )
        await audit(session, ctx, "tenant.invite", tenant.slug, tenant=tenant)
    return _invite_result(ctx, tenant.slug, tenant.name, code, created=False)


def _invite_result(
    ctx: CommandContext, tenant_slug: str, tenant_name: str, code: str, created: bool
) -> CommandResult:
    bot = ctx.deps.bot_usernames.get("telegram")
    link = f"https://t.me/{bot}?start={code}" if bot else None
    lines = [
        f"Tenant {tenant_slug} ({tenant_name}) created."
        if created
        else f"New invite for {tenant_slug}.",
        f"Invite code (single use, expires in 7 days): {code}",
        f"Telegram: /start {code}" + (f" or {link}" if link else ""),
        f"Slack: /sb join {code}",
    ]
    data: dict[str, object] = {"slug": tenant_slug, "name": tenant_name, "invite_code": code}
    if link:
        data["telegram_link"] = link
    return CommandResult("\n".join(lines), data=data)


@commands.command(
    "tenant list",
    permission="stats.read",
    arguments=[Arg("status", nargs="?", choices=TENANT_STATUSES)],
)
async def list_(ctx: CommandContext) -> CommandResult:
    """List tenants, optionally by status."""
    async with ctx.deps.sessions() as session:
        tenants = await TenantRepository(session).list(ctx.args.status)
    if not tenants:
        return CommandResult("No tenants.", data=[])
    lines = [
        f"{t.slug:<20} {t.status:<9} {t.plan:<8} {t.token_balance:>12,} tokens  {t.name}"
        for t in tenants
    ]
    return CommandResult("\n".join(lines), data=[tenant_summary(t) for t in tenants])


@commands.command("tenant show", permission="stats.read", arguments=[Arg("slug", type=slug)])
async def show(ctx: CommandContext) -> CommandResult:
    """A tenant's status, balance and this month's usage."""
    deps = ctx.deps
    async with deps.sessions() as session:
        tenant = await TenantRepository(session).get(ctx.args.slug)
        totals = await UsageRepository(session).totals(tenant.id, month_start(deps.clock()))
    cost = to_micros(deps.config.conversion.amount(totals.costs))
    currency = deps.config.billing_currency
    data = tenant_summary(tenant)
    data["usage"] = {
        "calls": totals.calls,
        "failed_calls": totals.failed,
        "input_tokens": totals.input_tokens,
        "cached_input_tokens": totals.cached_input_tokens,
        "output_tokens": totals.output_tokens,
        "reasoning_tokens": totals.reasoning_tokens,
        "charged_tokens": totals.charged_tokens,
        "cost": money_str(cost),
        "currency": currency,
    }
    text = (
        f"{tenant.name} ({tenant.slug}) — {tenant.status}, {tenant.plan}\n"
        f"Balance: {tenant.token_balance:,} tokens ({tenant.tokens_reserved:,} reserved)\n"
        f"This month: {totals.calls} calls, {totals.input_tokens:,} in / "
        f"{totals.output_tokens:,} out, cost {money_str(cost)} {currency}\n"
        f"VAT {Decimal(tenant.vat_rate_ppm) / 10_000}% · currency {tenant.billing_currency}"
    )
    return CommandResult(text, data=data)


async def _set_status(ctx: CommandContext, status: TenantStatus) -> CommandResult:
    async with ctx.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(ctx.args.slug)
        before = tenant.status
        tenant.status = status
        await audit(
            session,
            ctx,
            f"tenant.{'suspend' if status == 'suspended' else 'activate'}",
            tenant.slug,
            {"status": before},
            {"status": status},
            tenant=tenant,
        )
    return CommandResult(
        f"Tenant {tenant.slug} is now {status}.",
        data={"slug": tenant.slug, "status": status, "previous": before},
    )


@commands.command("tenant suspend", permission=WRITE, arguments=[Arg("slug", type=slug)])
async def suspend(ctx: CommandContext) -> CommandResult:
    """Suspend a tenant: its chats are refused until activated."""
    return await _set_status(ctx, "suspended")


@commands.command("tenant activate", permission=WRITE, arguments=[Arg("slug", type=slug)])
async def activate(ctx: CommandContext) -> CommandResult:
    """Activate a tenant (ends its trial or suspension)."""
    return await _set_status(ctx, "active")


@commands.command(
    "tenant plan", permission=WRITE, arguments=[Arg("slug"), Arg("plan", type=plan_slug)]
)
async def plan(ctx: CommandContext) -> CommandResult:
    """Put a tenant on a plan (prepaid, postpaid or a subscription plan)."""
    notes: list[str] = []
    async with ctx.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(ctx.args.slug)
        chosen = await PlanRepository(session).find(ctx.args.plan)
        if chosen is None or not chosen.active:
            offered = ", ".join(
                p.slug for p in await PlanRepository(session).list(active_only=True)
            )
            raise ctx.usage_error(f"No plan '{ctx.args.plan}' on offer. Plans: {offered}.")
        before = tenant.plan
        tenant.plan = chosen.slug
        subscription = await SubscriptionRepository(session).current(tenant.id)
        await audit(
            session,
            ctx,
            "tenant.plan",
            tenant.slug,
            {"plan": before},
            {"plan": chosen.slug},
            tenant=tenant,
        )
    if subscription is not None and subscription.plan != chosen.slug:
        notes.append(
            f"Note: {tenant.slug} still has a Stripe subscription to {subscription.plan}; "
            "cancel it in the Stripe dashboard if it should stop."
        )
    if chosen.kind == "subscription" and (subscription is None or subscription.plan != chosen.slug):
        notes.append(
            "Its included tokens come with paid Stripe invoices (/subscribe); "
            "grant tokens by hand with /tokens grant otherwise."
        )
    return CommandResult(
        "\n".join(
            [f"Tenant {tenant.slug} is now on the {chosen.slug} plan (was {before}).", *notes]
        ),
        data={"slug": tenant.slug, "plan": chosen.slug, "previous": before},
    )


@commands.command(
    "tenant quota",
    permission=WRITE,
    arguments=[Arg("slug"), Arg("tokens", type=quota, metavar="N|none")],
)
async def quota_(ctx: CommandContext) -> CommandResult:
    """Set a postpaid tenant's soft monthly token quota (none removes it)."""
    async with ctx.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(ctx.args.slug)
        before = tenant.monthly_token_quota
        tenant.monthly_token_quota = ctx.args.tokens
        await audit(
            session,
            ctx,
            "tenant.quota",
            tenant.slug,
            {"monthly_token_quota": before},
            {"monthly_token_quota": tenant.monthly_token_quota},
            tenant=tenant,
        )
    shown = (
        f"{tenant.monthly_token_quota:,} tokens a month" if tenant.monthly_token_quota else "none"
    )
    note = (
        ""
        if tenant.plan == "postpaid"
        else f"\nNote: the quota applies to postpaid tenants; {tenant.slug} is {tenant.plan}."
    )
    return CommandResult(
        f"Tenant {tenant.slug} monthly quota: {shown}.{note}",
        data={"slug": tenant.slug, "monthly_token_quota": tenant.monthly_token_quota},
    )
