"""``/subscription [cancel|portal]``: a tenant manages its own Stripe subscription.

Members see their plan, its status and the end of the paid period, cancel it at that end
(through Stripe, so nothing more is charged; the tokens already granted stay), and get a Stripe
Billing Portal link to change the card. Platform admins do the same for any tenant with
``/subscription SLUG [cancel]`` or ``--tenant``. Stripe's ``customer.subscription.updated``
event keeps our copy in step whichever way a change was made (see
:mod:`billing.stripe.subscription_events`).
"""

from __future__ import annotations

from typing import Any

from admin_commands.common import audit, target_tenant
from admin_commands.language import translator
from admin_commands.payments import NOT_CONFIGURED
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.roles import minimum_role
from admin_commands.values import slug
from billing.stars.amounts import STARS_PROVIDER
from billing.stripe.checkout import CheckoutService
from billing.stripe.subscription_events import apply_state, cancellation_text, day_text
from core.envelope import LinkButton
from core.errors import PaymentUnavailable, PermissionDenied, SwitchboardError
from core.i18n import Translator, lazy
from storage.models import Subscription, Tenant
from storage.repositories.payments import SubscriptionRepository
from storage.repositories.tenants import TenantRepository

commands = CommandGroup()

#: Changing a tenant's subscription from outside it is a billing action.
WRITE = "billing.write"


@commands.command(
    "subscription",
    audience="member",
    unbound_ok=True,
    arguments=[Arg("slug", nargs="?", type=slug), Arg("action", nargs="?", choices=["cancel"])],
)
async def subscription(ctx: CommandContext) -> CommandResult:
    """Your subscription: plan, status, and when it renews or ends."""
    if ctx.args.slug is None:
        tenant = await _tenant(ctx)
    else:
        permission = WRITE if ctx.args.action == "cancel" else "stats.read"
        if not ctx.caller.can(permission):
            raise PermissionDenied(minimum_role(permission), "/subscription SLUG")
        async with ctx.deps.sessions() as session:
            tenant = await TenantRepository(session).get(ctx.args.slug)
    if ctx.args.action == "cancel":
        return await _cancel(ctx, tenant)
    current = await _current(ctx, tenant)
    t = translator(ctx)
    if current is None:
        return CommandResult(
            t("{name} has no subscription. /subscribe PLAN starts one.", name=tenant.name),
            data={"tenant": tenant.slug, "subscription": None},
        )
    current = await _refreshed(ctx, current)
    return CommandResult(_describe(t, tenant, current), data=_json(tenant, current))


@commands.command(
    "subscription cancel", audience="member", unbound_ok=True, arguments=[Arg("--tenant")]
)
async def cancel(ctx: CommandContext) -> CommandResult:
    """Cancel your subscription at the end of the paid period (no further charge)."""
    return await _cancel(ctx, await _tenant(ctx))


@commands.command(
    "subscription portal", audience="member", unbound_ok=True, arguments=[Arg("--tenant")]
)
async def portal(ctx: CommandContext) -> CommandResult:
    """A Stripe link to change your card and see your subscription's invoices."""
    tenant = await _tenant(ctx)
    current = await _current(ctx, tenant)
    if current is None:
        raise SwitchboardError(
            f"{tenant.slug} has no subscription",
            user_message=lazy("{name} has no subscription to manage.", name=tenant.name),
        )
    if current.provider == STARS_PROVIDER:
        raise SwitchboardError(
            f"{tenant.slug}'s subscription is paid in Stars",
            user_message=lazy(
                "This subscription is paid in Telegram Stars: Telegram manages it "
                "(Settings → My Stars); /subscription cancel stops its renewals."
            ),
        )
    url = await _checkout(ctx).portal_url(current)
    t = translator(ctx)
    return CommandResult(
        t("Manage your subscription (card, invoices) with the link."),
        data={"tenant": tenant.slug, "url": url},
        buttons=[LinkButton(t("Manage subscription"), url)],
    )


async def _cancel(ctx: CommandContext, tenant: Tenant) -> CommandResult:
    current = await _current(ctx, tenant)
    if current is None:
        raise SwitchboardError(
            f"{tenant.slug} has no subscription",
            user_message=lazy("{name} has no subscription to cancel.", name=tenant.name),
        )
    if current.cancel_at_period_end:
        return CommandResult(
            cancellation_text(current, translator(ctx)), data=_json(tenant, current)
        )
    if current.provider == STARS_PROVIDER:
        return await _cancel_stars(ctx, tenant, current)
    state = await _checkout(ctx).cancel_at_period_end(current)
    before = {"cancel_at_period_end": False}
    async with ctx.deps.sessions.begin() as session:
        row = await SubscriptionRepository(session).find(current.stripe_subscription_id)
        assert row is not None
        apply_state(row, state, ctx.deps.clock())
        await audit(
            session,
            ctx,
            "subscription.cancel",
            row.stripe_subscription_id,
            before,
            {"cancel_at_period_end": row.cancel_at_period_end},
            tenant=tenant,
        )
    return CommandResult(cancellation_text(row, translator(ctx)), data=_json(tenant, row))


async def _cancel_stars(
    ctx: CommandContext, tenant: Tenant, current: Subscription
) -> CommandResult:
    """A Stars subscription: Telegram stops renewing it (``editUserStarSubscription``)."""
    if ctx.deps.stars is None:
        raise PaymentUnavailable("Telegram Stars are not configured", user_message=NOT_CONFIGURED)
    await ctx.deps.stars.cancel(current)
    async with ctx.deps.sessions.begin() as session:
        row = await SubscriptionRepository(session).find(current.stripe_subscription_id)
        assert row is not None
        await audit(
            session, ctx, "subscription.cancel", row.stripe_subscription_id,
            {"cancel_at_period_end": False}, {"cancel_at_period_end": True, "provider": "stars"},
            tenant=tenant,
        )  # fmt: skip
    return CommandResult(cancellation_text(row, translator(ctx)), data=_json(tenant, row))


async def _tenant(ctx: CommandContext) -> Tenant:
    async with ctx.deps.sessions() as session:
        return await target_tenant(ctx, session, permission=WRITE)


async def _current(ctx: CommandContext, tenant: Tenant) -> Subscription | None:
    async with ctx.deps.sessions() as session:
        return await SubscriptionRepository(session).current(tenant.id)


async def _refreshed(ctx: CommandContext, current: Subscription) -> Subscription:
    """With the period's end from Stripe when we have not heard it yet."""
    if (
        current.current_period_end is not None
        or ctx.deps.checkout is None
        or current.provider == STARS_PROVIDER
    ):
        return current
    try:
        state = await ctx.deps.checkout.subscription_state(current)
    except PaymentUnavailable:
        return current  # shown without the date; nothing is wrong with the subscription
    async with ctx.deps.sessions.begin() as session:
        row = await SubscriptionRepository(session).find(current.stripe_subscription_id)
        assert row is not None
        apply_state(row, state, ctx.deps.clock())
    return row


def _checkout(ctx: CommandContext) -> CheckoutService:
    if ctx.deps.checkout is None:
        raise PaymentUnavailable("Stripe is not configured", user_message=NOT_CONFIGURED)
    return ctx.deps.checkout


def _describe(t: Translator, tenant: Tenant, current: Subscription) -> str:
    end = current.current_period_end
    shown = {
        "name": tenant.name,
        "plan": current.plan,
        "status": _status(t).get(current.status, current.status),
    }
    if current.cancel_at_period_end:
        if end is None:
            return t(
                "{name}: {plan} plan, {status}; ends on the end of the paid period "
                "(cancelled; no further charge).",
                **shown,
            )
        return t(
            "{name}: {plan} plan, {status}; ends on {date} (cancelled; no further charge).",
            date=day_text(t, end),
            **shown,
        )
    if current.status == "past_due":
        return t(
            "{name}: {plan} plan, {status}; the last payment failed; Stripe tries again "
            "(/subscription portal).",
            **shown,
        )
    if end is None:
        return t("{name}: {plan} plan, {status}; renews on the end of the paid period.", **shown)
    return t("{name}: {plan} plan, {status}; renews on {date}.", date=day_text(t, end), **shown)


def _status(t: Translator) -> dict[str, str]:
    """A subscription's status as it reads in ``t``'s language (``--json`` keeps the key)."""
    return {
        "active": t.pgettext("subscription", "active"),
        "past_due": t.pgettext("subscription", "past_due"),
        "canceled": t.pgettext("subscription", "canceled"),
    }


def _json(tenant: Tenant, current: Subscription) -> dict[str, Any]:
    end = current.current_period_end
    return {
        "tenant": tenant.slug,
        "subscription": {
            "plan": current.plan,
            "status": current.status,
            "current_period_end": end.isoformat() if end else None,
            "cancel_at_period_end": current.cancel_at_period_end,
        },
    }
