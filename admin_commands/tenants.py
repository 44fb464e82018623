"""Tenant provisioning, status and terms: ``/tenant create|list|show|suspend|activate``,
``/tenant plan``, ``/tenant quota`` and the billing details ``/tenant set``."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from admin_commands.common import audit, money_str, tenant_summary
from admin_commands.language import translator
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.values import (
    currency,
    email,
    name,
    one_of,
    plan_slug,
    quota,
    shown,
    slug,
    text_of,
    typed_decimal,
)
from billing.invoicing.arithmetic import ppm_of, rate_of
from core.clock import month_start
from core.i18n import N_, Translator, lazy
from core.money import from_micros, to_micros
from storage.models import Tenant
from storage.repositories.catalog import PlanRepository
from storage.repositories.payments import SubscriptionRepository
from storage.repositories.tenants import InviteRepository, TenantRepository
from storage.repositories.usage import UsageRepository
from storage.states import TENANT_STATUSES, TenantStatus

WRITE = "tenants.write"
commands = CommandGroup()

#: A tenant's status as people read it (the stored word stays English in --json and the audit).
STATUS_NAMES: dict[str, str] = {
    "trial": N_("trial"),
    "active": N_("active"),
    "suspended": N_("suspended"),
}


def status_name(t: Translator, status: str) -> str:
    return t(STATUS_NAMES[status]) if status in STATUS_NAMES else status


def plain_number(t: Translator, value: Decimal) -> str:
    """An exact amount as it is, without grouping (``1234.5`` / ``1234,5``)."""
    return t.number(value, "0.######")


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
    t = translator(ctx)
    bot = ctx.deps.bot_usernames.get("telegram")
    link = f"https://t.me/{bot}?start={code}" if bot else None
    lines = [
        t("Tenant {slug} ({name}) created.", slug=tenant_slug, name=tenant_name)
        if created
        else t("New invite for {slug}.", slug=tenant_slug),
        t("Invite code (single use, expires in 7 days): {code}", code=code),
        t("Telegram: /start {code} or {link}", code=code, link=link)
        if link
        else f"Telegram: /start {code}",
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
    t = translator(ctx)
    async with ctx.deps.sessions() as session:
        tenants = await TenantRepository(session).list(ctx.args.status)
    if not tenants:
        return CommandResult(t("No tenants."), data=[])
    width = max(len(status_name(t, status)) for status in STATUS_NAMES)
    lines = [
        f"{x.slug:<20} {status_name(t, x.status):<{width}} {x.plan:<8} "
        + t("{tokens} tokens", tokens=t.number(x.token_balance).rjust(12))
        + f"  {x.name}"
        for x in tenants
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
    t = translator(ctx)
    lines = [
        f"{tenant.name} ({tenant.slug}) — {status_name(t, tenant.status)}, {tenant.plan}",
        t(
            "Balance: {balance} tokens ({reserved} reserved)",
            balance=t.number(tenant.token_balance),
            reserved=t.number(tenant.tokens_reserved),
        ),
        t(
            "This month: {calls}, {input} in / {output} out, cost {cost} {currency}",
            calls=t.ngettext("{n} call", "{n} calls", totals.calls),
            input=t.number(totals.input_tokens),
            output=t.number(totals.output_tokens),
            cost=plain_number(t, from_micros(cost)),
            currency=currency,
        ),
        t(
            "VAT {rate}% · currency {currency}",
            rate=t.number(Decimal(tenant.vat_rate_ppm) / 10_000, "0.####"),
            currency=tenant.billing_currency,
        ),
    ]
    return CommandResult("\n".join(lines) + _billing_line(t, tenant), data=data)


def _billing_line(t: Translator, tenant: Tenant) -> str:
    """The buyer details an invoice prints, when any is set."""
    parts = [
        (tenant.address or "").replace("\n", ", "),
        tenant.country or "",
        t("VAT ID {vat_id}", vat_id=tenant.vat_id) if tenant.vat_id else "",
        t("language {code}", code=tenant.language) if tenant.language else "",
    ]
    shown_parts = [p for p in parts if p]
    return ("\n" + t("Billing: {details}", details=" · ".join(shown_parts))) if shown_parts else ""


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
    t = translator(ctx)
    return CommandResult(
        t("Tenant {slug} is now {status}.", slug=tenant.slug, status=status_name(t, status)),
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
            raise ctx.usage_error(
                lazy(
                    "No plan '{plan}' on offer. Plans: {offered}.",
                    plan=ctx.args.plan,
                    offered=offered,
                )
            )
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
    t = translator(ctx)
    if subscription is not None and subscription.plan != chosen.slug:
        notes.append(
            t(
                "Note: {slug} still has a Stripe subscription to {plan}; "
                "cancel it in the Stripe dashboard if it should stop.",
                slug=tenant.slug,
                plan=subscription.plan,
            )
        )
    if chosen.kind == "subscription" and (subscription is None or subscription.plan != chosen.slug):
        notes.append(
            t(
                "Its included tokens come with paid Stripe invoices (/subscribe); "
                "grant tokens by hand with /tokens grant otherwise."
            )
        )
    done = t(
        "Tenant {slug} is now on the {plan} plan (was {before}).",
        slug=tenant.slug,
        plan=chosen.slug,
        before=before,
    )
    return CommandResult(
        "\n".join([done, *notes]),
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
    t = translator(ctx)
    limit = tenant.monthly_token_quota
    shown = t.ngettext("{n} token a month", "{n} tokens a month", limit) if limit else t("none")
    note = (
        ""
        if tenant.plan == "postpaid"
        else "\n"
        + t(
            "Note: the quota applies to postpaid tenants; {slug} is {plan}.",
            slug=tenant.slug,
            plan=tenant.plan,
        )
    )
    return CommandResult(
        t("Tenant {slug} monthly quota: {quota}.", slug=tenant.slug, quota=shown) + note,
        data={"slug": tenant.slug, "monthly_token_quota": tenant.monthly_token_quota},
    )


# -- billing details: the invoice's buyer (DESIGN §8 "Tenant billing details") ---------------------

#: Languages documents are written in.
LANGUAGES = ("en", "fr", "de")
#: What clears an optional detail (``--vat-id none``).
CLEAR = frozenset({"none", "-"})
#: A postal address: a few lines (``tenants.address`` is TEXT; this keeps it to an address).
MAX_ADDRESS_CHARS = 500
#: An EU VAT ID: two letters of country, then 2 to 13 letters or digits (``DE123456789``).
VAT_ID_RE = re.compile(r"^[A-Z]{2}[A-Z0-9]{2,13}$")
#: CLDR codes of regions that are not countries (``ZZ`` unknown, ``EU``, ``UN``...).
_NOT_COUNTRIES = frozenset({"ZZ", "EU", "EZ", "UN", "QO", "XA", "XB"})


def _clearable(parse: Callable[[str], str]) -> Callable[[str], str]:
    """``parse``, except that ``none`` or ``-`` gives ``""`` (the detail is removed)."""

    def wrapped(raw: str) -> str:
        return "" if raw.strip().lower() in CLEAR else parse(raw)

    return wrapped


def country(raw: str) -> str:
    """An ISO 3166 alpha-2 country code (``FR``, ``de`` → ``DE``)."""
    from babel import Locale

    code = raw.strip().upper()
    if not (len(code) == 2 and code.isascii() and code.isalpha()):
        raise argparse.ArgumentTypeError(
            lazy("{value} is not a country code like FR or DE", value=shown(raw))
        )
    if code in _NOT_COUNTRIES or code not in Locale("en").territories:
        raise argparse.ArgumentTypeError(
            lazy("{value} is not an ISO 3166 country code", value=shown(raw))
        )
    return code


def vat_id(raw: str) -> str:
    """A VAT ID as written on invoices: ``DE 123 456 789`` → ``DE123456789``."""
    value = re.sub(r"[\s.\-]", "", raw).upper()
    if not VAT_ID_RE.match(value):
        raise argparse.ArgumentTypeError(
            lazy(
                "{value} is not a VAT ID: two letters of country, then 2 to 13 letters or "
                "digits, like DE123456789",
                value=shown(raw),
            )
        )
    return value


def vat_rate(raw: str) -> Decimal:
    """A VAT rate from 0 to 1 (``0.20``, ``0,055``) or a percentage (``20%``, ``5.5 %``)."""
    text = raw.strip()
    percent = text.endswith("%")
    number = typed_decimal(
        text.removesuffix("%").strip(),
        what=N_("a VAT rate"),
        places=4 if percent else 6,
        example="0.20, 0,055 or 20%",
    )
    rate = number / 100 if percent else number
    if rate > 1:
        raise argparse.ArgumentTypeError(
            lazy("{value} must be from 0 to 1 (or 0% to 100%)", value=shown(raw))
        )
    return rate


def billing_currency(raw: str) -> str:
    """An ISO 4217 currency code Babel knows (``eur`` → ``EUR``)."""
    from babel.numbers import list_currencies

    code = currency(raw)
    if code not in list_currencies():
        raise argparse.ArgumentTypeError(
            lazy("{value} is not an ISO 4217 currency code", value=shown(raw))
        )
    return code


address = text_of(MAX_ADDRESS_CHARS)
language = one_of(LANGUAGES)


def billing_details(tenant: Tenant) -> dict[str, Any]:
    """What ``/tenant set`` changes, as the audit log keeps it before and after."""
    return {
        "name": tenant.name,
        "email": tenant.email,
        "address": tenant.address,
        "country": tenant.country,
        "vat_id": tenant.vat_id,
        "vat_rate": str(rate_of(tenant.vat_rate_ppm)),
        "currency": tenant.billing_currency,
        "language": tenant.language,
    }


@commands.command(
    "tenant set",
    permission=WRITE,
    arguments=[
        Arg("slug", type=slug),
        Arg("--name", type=name),
        Arg("--email", type=_clearable(email)),
        Arg("--address", type=_clearable(address)),
        Arg("--country", type=_clearable(country)),
        Arg("--vat-id", type=_clearable(vat_id)),
        Arg("--vat-rate", type=vat_rate),
        Arg("--currency", type=billing_currency),
        Arg("--language", type=_clearable(language)),
    ],
)
async def set_(ctx: CommandContext) -> CommandResult:
    """Set a tenant's billing details (what is not given is unchanged; none removes one)."""
    args = ctx.args
    given = {
        key: getattr(args, key)
        for key in ("name", "email", "address", "country", "vat_id", "vat_rate", "currency",
                    "language")
        if getattr(args, key) is not None
    }  # fmt: skip
    if not given:
        raise ctx.usage_error(lazy("Give at least one detail to set."))
    async with ctx.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(args.slug)
        before = billing_details(tenant)
        _apply(tenant, given)
        after = billing_details(tenant)
        await audit(session, ctx, "tenant.set", tenant.slug, before, after, tenant=tenant)
    changed = [key for key in after if after[key] != before[key]]
    t = translator(ctx)
    # The details are named as their options are (--vat-id → vat_id): names stay English.
    changes = ", ".join(f"{key} {_shown(t, after[key])}" for key in changed)
    text = t("Tenant {slug}: {changes}.", slug=tenant.slug, changes=changes or t("unchanged"))
    return CommandResult(text, data=tenant_summary(tenant) | {"changed": changed})


def _apply(tenant: Tenant, given: dict[str, Any]) -> None:
    for key in ("name", "address", "country", "vat_id", "language", "email"):
        if key in given:
            setattr(tenant, key, given[key] or None)
    if "vat_rate" in given:
        tenant.vat_rate_ppm = ppm_of(given["vat_rate"])
    if "currency" in given:
        tenant.billing_currency = given["currency"]


def _shown(t: Translator, value: object) -> str:
    if value is None:
        return t("removed")
    text = str(value).replace("\n", ", ")
    return text if len(text) <= 60 else text[:59] + "…"
