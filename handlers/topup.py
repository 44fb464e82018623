"""The out-of-tokens refusal with something to do about it: a payment link per pack."""

from __future__ import annotations

from datetime import timedelta

from core.envelope import ChatAddress, LinkButton
from core.errors import InsufficientTokens, PaymentUnavailable
from handlers.context import Handler, TurnContext

#: A chat refused again within this time gets the same unpaid links, not new sessions.
REUSE_LINKS_WITHIN = timedelta(hours=1)


class TopUpOfferMiddleware:
    """Puts the ``/buy`` links on an :class:`InsufficientTokens` refusal from the turn; the
    error middleware still makes the reply (text and buttons).

    Postpaid tenants are invoiced (their quota is not something to buy), and without Stripe
    there is nothing to offer: those refusals pass unchanged.
    """

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None:
        try:
            await call_next(ctx)
        except InsufficientTokens as exc:
            checkout = ctx.deps.checkout
            tenant = ctx.tenant
            if checkout is None or tenant is None or tenant.plan == "postpaid":
                raise
            try:
                links = await checkout.pack_links(
                    tenant,
                    reply_to=ChatAddress.of(ctx.message),
                    actor=f"{ctx.message.channel}:{ctx.message.user_id}",
                    reuse_within=REUSE_LINKS_WITHIN,
                )
            except PaymentUnavailable as problem:
                exc.user_message = f"{exc.user_message}\n{problem.user_message}"
                raise exc from None
            if links:
                exc.user_message = f"{exc.user_message}\nTop up now:"
                exc.buttons = tuple(LinkButton(link.label, link.url) for link in links)
            raise
