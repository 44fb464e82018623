"""What tenants can buy: ``/pack list|set`` and ``/plan list|set``, audited."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from admin_commands.common import audit
from admin_commands.language import translator
from admin_commands.payments import price_in
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
from billing.amounts import amount_str, is_chargeable
from billing.catalog import ppm
from core.clock import Clock
from core.i18n import Number, Translator, lazy
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


def _ratio_text(t: Translator, value_ppm: int) -> str:
    """``1.20`` / ``1,20``: the places :func:`_ratio_str` keeps, in ``t``'s language."""
    exact = _ratio_str(value_ppm)
    places = len(exact.partition(".")[2])
    return t.number(Decimal(exact), "0." + "0" * places if places else "0")


def _stars_text(t: Translator, stars: int) -> str:
    """``750 Stars`` (Telegram's currency keeps its name)."""
    return f"{t.number(stars)} Stars"


@commands.command("pack list", permission="stats.read")
async def pack_list(ctx: CommandContext) -> CommandResult:
    """The token packs and their prices."""
    async with ctx.deps.sessions() as session:
        packs = await PackRepository(session).list()
    t = translator(ctx)
    lines = [_pack_line(t, p) for p in packs] or [t("No packs.")]
    return CommandResult("\n".join(lines), data=[pack_json(p) for p in packs])


def _pack_line(t: Translator, pack: Pack) -> str:
    price = price_in(t, pack.price_micros, pack.currency)
    stars = _stars_text(t, pack.stars) if pack.stars else ""  # nothing when not sold for Stars
    off = "" if pack.active else "  " + t("(not on sale)")
    tokens = f"{t.number(pack.tokens):>12} " + t("tokens")
    return f"{pack.slug:<12} {pack.name:<14} {tokens} {price:>12}{stars:>14}{off}"


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
                raise ctx.usage_error(lazy("A new pack needs --tokens and --price."))
            pack = Pack(slug=args.slug, name=args.name or args.slug.title(), active=True)
            pack.currency = args.currency or ctx.deps.config.billing_currency
            pack.created_at = ctx.deps.clock()
            session.add(pack)
        elif all(
            v is None
            for v in (args.name, args.tokens, args.price, args.currency, args.active, args.stars)
        ):
            raise ctx.usage_error(
                lazy(
                    "Nothing to change: give --name, --tokens, --price, --currency, --active "
                    "or --stars."
                )
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
    t = translator(ctx)
    terms = t(
        "{tokens} tokens for {price}",
        tokens=t.number(pack.tokens),
        price=price_in(t, pack.price_micros, pack.currency),
    )
    if pack.stars:
        terms += " " + t("or {stars}", stars=_stars_text(t, pack.stars))
    if not pack.active:
        terms += " " + t("(not on sale)")
    text = (
        t("Pack {slug} created: {terms}.", slug=pack.slug, terms=terms)
        if before is None
        else t("Pack {slug} updated: {terms}.", slug=pack.slug, terms=terms)
    )
    return CommandResult(text, data=after)


@commands.command("plan list", permission="stats.read")
async def plan_list(ctx: CommandContext) -> CommandResult:
    """The plans: prepaid, postpaid and the monthly subscriptions."""
    async with ctx.deps.sessions() as session:
        plans = await PlanRepository(session).list()
    t = translator(ctx)
    lines = [_plan_line(t, p) for p in plans] or [t("No plans.")]
    return CommandResult("\n".join(lines), data=[plan_json(p) for p in plans])


def _plan_line(t: Translator, plan: Plan) -> str:
    """A plan's slug, name, kind (English, as --json gives it) and terms."""
    if plan.kind == "subscription":
        price = price_in(t, plan.price_micros, plan.currency)
        if plan.stars:
            price += " " + t("or {stars}", stars=_stars_text(t, plan.stars))
        terms = t(
            "{price}/month, {tokens} tokens included",
            price=price,
            tokens=t.number(plan.tokens_included),
        )
    elif plan.kind == "postpaid":
        terms = t(
            "usage cost × {markup} + {fee} a month",
            markup=_ratio_text(t, plan.markup_ppm),
            fee=price_in(t, plan.base_fee_micros, plan.currency),
        )
    else:
        terms = t("token packs bought in advance")
    off = "" if plan.active else "  " + t("(not offered)")
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
                    lazy(
                        "A new plan is a monthly subscription: give --price and --tokens-included."
                    )
                )
            plan = Plan(slug=args.slug, name=args.name or args.slug.title(), kind="subscription")
            plan.currency = args.currency or ctx.deps.config.billing_currency
            plan.markup_ppm, plan.base_fee_micros, plan.active = 1_000_000, 0, True
            plan.created_at = ctx.deps.clock()
            session.add(plan)
        elif all(v is None for v in changes):
            raise ctx.usage_error(lazy("Nothing to change: give at least one option."))
        if plan.kind != "subscription" and (
            args.price is not None or args.tokens_included is not None or args.stars is not None
        ):
            raise ctx.usage_error(
                lazy("The {kind} plan has no monthly price or included tokens.", kind=plan.kind)
            )
        if plan.slug == FALLBACK_PLAN and args.active is False:
            raise ctx.usage_error(
                lazy("The prepaid plan is where ended subscriptions go; it stays on.")
            )
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
                    lazy(
                        "Telegram takes at most {stars} Stars a month for a subscription.",
                        stars=Number(MAX_SUBSCRIPTION_STARS),
                    )
                )
            plan.stars = args.stars
        if plan.kind == "subscription":
            _check_price(ctx, plan.price_micros, plan.currency, allow_zero=False)
        _check_price(ctx, plan.base_fee_micros, plan.currency, allow_zero=True)
        _touch(plan, ctx.deps.clock)
        await session.flush()
        after = plan_json(plan)
        await audit(session, ctx, "plan.set", plan.slug, before, after)
    t = translator(ctx)
    line = _plan_line(t, plan).strip()
    text = (
        t("Plan created: {plan}", plan=line)
        if before is None
        else t("Plan updated: {plan}", plan=line)
    )
    return CommandResult(text, data=after)


def _check_price(ctx: CommandContext, micros: int, code: str, *, allow_zero: bool) -> None:
    """Refused before anything is written: Stripe must be able to charge it exactly."""
    if micros == 0 and not allow_zero:
        raise ctx.usage_error(lazy("The price must be above zero."))
    if not is_chargeable(micros, code):
        raise ctx.usage_error(
            lazy("{code} amounts cannot have more decimal places than Stripe charges.", code=code)
        )


def _touch(row: Pack | Plan, clock: Clock) -> None:
    row.updated_at = clock()
