"""The out-of-tokens refusal with something to do about it: a payment link per pack."""

from __future__ import annotations

import logging
from datetime import timedelta

from core.envelope import ChatAddress, LinkButton
from core.errors import InsufficientTokens, PaymentUnavailable
from handlers.context import Handler, TurnContext

log = logging.getLogger(__name__)

#: A chat refused again within this time gets the same unpaid links, not new sessions.
REUSE_LINKS_WITHIN = timedelta(hours=1)


class TopUpOfferMiddleware:
    """Catches :class:`InsufficientTokens` from the turn and answers it with the ``/buy`` links.

    Postpaid tenants are invoiced (their quota is not something to buy), and without Stripe
    there is nothing to offer: those refusals go on to the error middleware unchanged.
    """

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None:
        try:
            await call_next(ctx)
        except InsufficientTokens as exc:
            checkout = ctx.deps.checkout
            tenant = ctx.tenant
            if checkout is None or tenant is None or tenant.plan == "postpaid":
                raise
            ctx.outcome = "refused:InsufficientTokens"
            ctx.deps.metrics.errors.labels("InsufficientTokens").inc()
            log.info("turn refused: %s", exc)
            try:
                links = await checkout.pack_links(
                    tenant,
                    reply_to=ChatAddress.of(ctx.message),
                    actor=f"{ctx.message.channel}:{ctx.message.user_id}",
                    reuse_within=REUSE_LINKS_WITHIN,
                )
            except PaymentUnavailable as problem:
                await ctx.sink.send_text(f"{exc.user_message}\n{problem.user_message}")
                return
            if not links:
                await ctx.sink.send_text(exc.user_message)
                return
            await ctx.sink.send_buttons(
                f"{exc.user_message}\nTop up now:",
                [LinkButton(link.label, link.url) for link in links],
            )
