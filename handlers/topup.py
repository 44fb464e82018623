"""Refusals with something to do about them (DESIGN §8): the balance used up, or the trial
over, answered with a payment link per pack and the ``/subscribe`` commands of the plans, in the
reader's language (the refusal's own text is translated where it is shown; what is added here
follows it as written)."""

from __future__ import annotations

from decimal import Decimal

from admin_commands.payments import price_in
from billing.amounts import amount_str, minor_places
from billing.stripe.checkout import LINK_REUSE, CheckoutLink
from core.envelope import ChatAddress, LinkButton
from core.errors import InsufficientTokens, PaymentUnavailable, SwitchboardError, TenantUnavailable
from core.i18n import Translator
from handlers.context import Handler, TurnContext
from storage.models import Tenant
from storage.repositories.catalog import PlanRepository
from storage.repositories.payments import SubscriptionRepository

#: The reason :class:`~handlers.middlewares.TenantStatusMiddleware` gives for an ended trial.
TRIAL_ENDED = "trial ended"


class TopUpOfferMiddleware:
    """Puts the ``/buy`` links (and the ``/subscribe`` plans) on an :class:`InsufficientTokens`
    refusal from the turn and on the trial-ended refusal of the status check; the error
    middleware still makes the reply (text and buttons).

    Postpaid tenants are invoiced (their quota is not something to buy), and without Stripe
    there is nothing to offer: those refusals pass unchanged.
    """

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None:
        try:
            await call_next(ctx)
        except InsufficientTokens as exc:
            await _offer(ctx, exc)
            raise
        except TenantUnavailable as exc:
            if exc.reason == TRIAL_ENDED:
                await _offer(ctx, exc)
            raise


async def _offer(ctx: TurnContext, exc: SwitchboardError) -> None:
    """Add the links to ``exc``'s message and buttons (the caller raises it again)."""
    checkout = ctx.deps.checkout
    tenant = ctx.tenant
    if checkout is None or tenant is None or tenant.plan == "postpaid":
        return
    try:
        links = await checkout.pack_links(
            tenant,
            reply_to=ChatAddress.of(ctx.message),
            actor=f"{ctx.message.channel}:{ctx.message.user_id}",
            reuse_within=LINK_REUSE,
        )
    except PaymentUnavailable as problem:
        exc.user_message = f"{exc.user_message}\n{problem.localized(ctx.t)}"
        return
    lines = [exc.user_message, *await subscribe_lines(ctx, tenant)]
    if links:
        lines.append(ctx.t("Top up now:"))
        exc.buttons = tuple(LinkButton(_label(ctx.t, link), link.url) for link in links)
    exc.user_message = "\n".join(lines)


async def subscribe_lines(ctx: TurnContext, tenant: Tenant) -> list[str]:
    """``/subscribe PLAN`` for each plan on sale, unless the tenant already subscribes (one tap
    in Telegram; a Checkout Session is made only when the member asks)."""
    async with ctx.deps.sessions() as session:
        if await SubscriptionRepository(session).current(tenant.id) is not None:
            return []
        plans = await PlanRepository(session).list(kind="subscription", active_only=True)
    if not plans:
        return []
    t = ctx.t
    return [t("Or subscribe to a monthly plan:")] + [
        f"/subscribe {plan.slug} ("
        + t(
            "{name}: {tokens} tokens for {price}/month",
            name=plan.name,
            tokens=t.number(plan.tokens_included),
            price=_price(t, plan.price_micros, plan.currency),
        )
        + ")"
        for plan in plans
    ]


def _label(t: Translator, link: CheckoutLink) -> str:
    """``Pro: 2,000,000 tokens for 15.00 EUR`` (:attr:`CheckoutLink.label`) in ``t``'s language."""
    price = price_in(t, link.amount_micros, link.currency)
    return t("{name}: {tokens} tokens for {price}", name=link.name,
             tokens=t.number(link.tokens), price=price)  # fmt: skip


def _price(t: Translator, micros: int, currency: str) -> str:
    """``12.00 EUR`` / ``12,00 EUR``: the currency's places, never grouped (as price lists)."""
    places = minor_places(currency)
    pattern = "0." + "0" * places if places else "0"
    return f"{t.number(Decimal(amount_str(micros, currency)), pattern)} {currency.upper()}"
