"""What tenants can buy: ``/pack list|set`` and ``/plan list|set``, audited."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from admin_commands.common import audit
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.values import (
    amount,
    currency,
    non_negative_int,
    plan_slug,
    positive_int,
    ratio,
    slug,
    yes_no,
)
from billing.amounts import amount_str, is_chargeable, price_label
from billing.catalog import ppm
from core.clock import Clock
from core.money import to_micros
from storage.models import Pack, Plan
from storage.repositories.catalog import PackRepository, PlanRepository

WRITE = "billing.write"
#: Telegram refuses a Stars subscription priced above this (Bot API, createInvoiceLink).
MAX_SUBSCRIPTION_STARS = 10_000
#: The plan tenants fall back to when a subscription ends: it must stay on offer.
FALLBACK_PLAN = "prepaid"

commands = CommandGroup()


def pack_json(pack: Pack) -> dict[str, Any]:
    return {
        "slug": pack.slug,
        "name": pack.name,
        "tokens": pack.tokens,
        "price": amount_str(pack.price_micros, pack.currency),
        "currency": pack.currency,
        "active": pack.active,
        "stars": pack.stars,
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "slug": plan.slug,
        "name": plan.name,
        "price": amount_str(plan.price_micros, plan.currency),
        "currency": plan.currency,
        "tokens_included": plan.tokens_included,
        "markup": _ratio_str(plan.markup_ppm),
        "base_fee": amount_str(plan.base_fee_micros, plan.currency),
        "kind": plan.kind,
        "active": plan.active,
        "stars": plan.stars,
    }


def _ratio_str(value_ppm: int) -> str:
    value = Decimal(value_ppm) / 1_000_000
    return str(
        value.quantize(Decimal("0.01")) if value == value.quantize(Decimal("0.01")) else value
    )


@commands.command("pack list", permission="stats.read")
async def pack_list(ctx: CommandContext) -> CommandResult:
    """The token packs and their prices."""
    async with ctx.deps.sessions() as session:
        packs = await PackRepository(session).list()
    lines = [_pack_line(p) for p in packs] or ["No packs."]
    return CommandResult("\n".join(lines), data=[pack_json(p) for p in packs])


def _pack_line(pack: Pack) -> str:
    price = price_label(pack.price_micros, pack.currency)
    off = "" if pack.active else "  (not on sale)"
    return (
        f"{pack.slug:<12} {pack.name:<14} {pack.tokens:>12,} tokens {price:>12}"
        f"{_stars_label(pack.stars):>14}{off}"
    )


def _stars_label(stars: int | None) -> str:
    """``750 Stars``, or nothing when it is not sold for Stars."""
    return f"{stars:,} Stars" if stars else ""


@commands.command(
    "pack set",
    permission=WRITE,
    arguments=[
        Arg("slug", type=slug),
        Arg("--name"),
        Arg("--tokens", type=positive_int, metavar="N"),
        Arg("--price", type=amount, metavar="AMOUNT"),
        Arg("--currency", type=currency),
        Arg("--active", type=yes_no, metavar="yes|no"),
        Arg("--stars", type=positive_int, metavar="N"),
    ],
)
async def pack_set(ctx: CommandContext) -> CommandResult:
    """Create a pack or change its name, tokens, price (also in Stars), currency or sale."""
    args = ctx.args
    async with ctx.deps.sessions.begin() as session:
        repo = PackRepository(session)
        pack = await repo.find(args.slug)
        before = pack_json(pack) if pack else None
        if pack is None:
            if args.tokens is None or args.price is None:
                raise ctx.usage_error("A new pack needs --tokens and --price.")
            pack = Pack(slug=args.slug, name=args.name or args.slug.title(), active=True)
            pack.currency = args.currency or ctx.deps.config.billing_currency
            pack.created_at = ctx.deps.clock()
            session.add(pack)
        elif all(
            v is None
            for v in (args.name, args.tokens, args.price, args.currency, args.active, args.stars)
        ):
            raise ctx.usage_error(
                "Nothing to change: give --name, --tokens, --price, --currency, --active "
                "or --stars."
            )
        pack.name = args.name or pack.name
        pack.tokens = args.tokens or pack.tokens
        pack.currency = args.currency or pack.currency
        if args.price is not None:
            pack.price_micros = to_micros(args.price)
        if args.active is not None:
            pack.active = args.active
        if args.stars is not None:
            pack.stars = args.stars
        _check_price(ctx, pack.price_micros, pack.currency, allow_zero=False)
        _touch(pack, ctx.deps.clock)
        await session.flush()
        after = pack_json(pack)
        await audit(session, ctx, "pack.set", pack.slug, before, after)
    verb = "created" if before is None else "updated"
    return CommandResult(
        f"Pack {pack.slug} {verb}: {pack.tokens:,} tokens for "
        f"{price_label(pack.price_micros, pack.currency)}"
        + (f" or {pack.stars:,} Stars" if pack.stars else "")
        + ("" if pack.active else " (not on sale)")
        + ".",
        data=after,
    )


@commands.command("plan list", permission="stats.read")
async def plan_list(ctx: CommandContext) -> CommandResult:
    """The plans: prepaid, postpaid and the monthly subscriptions."""
    async with ctx.deps.sessions() as session:
        plans = await PlanRepository(session).list()
    lines = [_plan_line(p) for p in plans] or ["No plans."]
    return CommandResult("\n".join(lines), data=[plan_json(p) for p in plans])


def _plan_line(plan: Plan) -> str:
    if plan.kind == "subscription":
        stars = f" or {plan.stars:,} Stars" if plan.stars else ""
        terms = (
            f"{price_label(plan.price_micros, plan.currency)}{stars}/month, "
            f"{plan.tokens_included:,} tokens included"
        )
    elif plan.kind == "postpaid":
        terms = (
            f"usage cost × {_ratio_str(plan.markup_ppm)} + "
            f"{price_label(plan.base_fee_micros, plan.currency)} a month"
        )
    else:
        terms = "token packs bought in advance"
    off = "" if plan.active else "  (not offered)"
    return f"{plan.slug:<12} {plan.name:<14} {plan.kind:<12} {terms}{off}"


@commands.command(
    "plan set",
    permission=WRITE,
    arguments=[
        Arg("slug", type=plan_slug),
        Arg("--name"),
        Arg("--price", type=amount, metavar="AMOUNT"),
        Arg("--tokens-included", type=non_negative_int, metavar="N"),
        Arg("--markup", type=ratio, metavar="X"),
        Arg("--base-fee", type=amount, metavar="AMOUNT"),
        Arg("--currency", type=currency),
        Arg("--active", type=yes_no, metavar="yes|no"),
        Arg("--stars", type=positive_int, metavar="N"),
    ],
)
async def plan_set(ctx: CommandContext) -> CommandResult:
    """Create a subscription plan or change a plan's terms."""
    args = ctx.args
    changes = (
        args.name,
        args.price,
        args.tokens_included,
        args.markup,
        args.base_fee,
        args.currency,
        args.active,
        args.stars,
    )
    async with ctx.deps.sessions.begin() as session:
        plan = await PlanRepository(session).find(args.slug)
        before = plan_json(plan) if plan else None
        if plan is None:
            if args.price is None or args.tokens_included is None:
                raise ctx.usage_error(
                    "A new plan is a monthly subscription: give --price and --tokens-included."
                )
            plan = Plan(slug=args.slug, name=args.name or args.slug.title(), kind="subscription")
            plan.currency = args.currency or ctx.deps.config.billing_currency
            plan.markup_ppm, plan.base_fee_micros, plan.active = 1_000_000, 0, True
            plan.created_at = ctx.deps.clock()
            session.add(plan)
        elif all(v is None for v in changes):
            raise ctx.usage_error("Nothing to change: give at least one option.")
        if plan.kind != "subscription" and (
            args.price is not None or args.tokens_included is not None or args.stars is not None
        ):
            raise ctx.usage_error(f"The {plan.kind} plan has no monthly price or included tokens.")
        if plan.slug == FALLBACK_PLAN and args.active is False:
            raise ctx.usage_error("The prepaid plan is where ended subscriptions go; it stays on.")
        plan.name = args.name or plan.name
        plan.currency = args.currency or plan.currency
        if args.price is not None:
            plan.price_micros = to_micros(args.price)
        if args.tokens_included is not None:
            plan.tokens_included = args.tokens_included
        if args.markup is not None:
            plan.markup_ppm = ppm(args.markup)
        if args.base_fee is not None:
            plan.base_fee_micros = to_micros(args.base_fee)
        if args.active is not None:
            plan.active = args.active
        if args.stars is not None:
            if args.stars > MAX_SUBSCRIPTION_STARS:
                raise ctx.usage_error(
                    f"Telegram takes at most {MAX_SUBSCRIPTION_STARS:,} Stars a month for a "
                    "subscription."
                )
            plan.stars = args.stars
        if plan.kind == "subscription":
            _check_price(ctx, plan.price_micros, plan.currency, allow_zero=False)
        _check_price(ctx, plan.base_fee_micros, plan.currency, allow_zero=True)
        _touch(plan, ctx.deps.clock)
        await session.flush()
        after = plan_json(plan)
        await audit(session, ctx, "plan.set", plan.slug, before, after)
    verb = "created" if before is None else "updated"
    return CommandResult(f"Plan {verb}: {_plan_line(plan).strip()}", data=after)


def _check_price(ctx: CommandContext, micros: int, code: str, *, allow_zero: bool) -> None:
    """Refused before anything is written: Stripe must be able to charge it exactly."""
    if micros == 0 and not allow_zero:
        raise ctx.usage_error("The price must be above zero.")
    if not is_chargeable(micros, code):
        raise ctx.usage_error(
            f"{code} amounts cannot have more decimal places than Stripe charges."
        )


def _touch(row: Pack | Plan, clock: Clock) -> None:
    row.updated_at = clock()
