"""The middleware chain every inbound message goes through (DESIGN.md §2), and its order.

Like aiogram's outer middlewares: each middleware gets the turn context and the rest of the chain
as ``call_next``; it stops the chain by not calling it. Control flow is not an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from functools import partial

from admin_commands.registry import CommandRegistry
from core.envelope import InboundMessage, ReplySink
from handlers.context import Handler, Middleware, TurnContext
from handlers.deps import Deps
from handlers.middlewares import (
    ChatOrderMiddleware,
    CommandMiddleware,
    DedupMiddleware,
    ErrorMiddleware,
    IdentifyMiddleware,
    RateLimitMiddleware,
    TenantStatusMiddleware,
)
from handlers.topup import TopUpOfferMiddleware
from handlers.turn import AssistantTurn

log = logging.getLogger(__name__)


class Pipeline:
    """Composes the middlewares once; :meth:`handle` runs one message through them."""

    def __init__(self, deps: Deps, middlewares: Sequence[Middleware], endpoint: Handler) -> None:
        self.deps = deps
        chain: Handler = endpoint
        for middleware in reversed(middlewares):
            chain = partial(_step, middleware, chain)
        self._chain = chain
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def handle(self, message: InboundMessage, sink: ReplySink) -> TurnContext:
        ctx = TurnContext(message, sink, self.deps)
        self._inflight += 1
        self._idle.clear()
        try:
            await self._chain(ctx)
            # Outside the chat's turn order: the next message of this chat need not wait.
            for job in ctx.after:
                try:
                    await job()
                except Exception:  # the reply is out; only bookkeeping is left undone
                    log.exception("after a %s message", message.channel)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()
        self.deps.metrics.turns.labels(message.channel, ctx.outcome).inc()
        return ctx

    @property
    def inflight(self) -> int:
        return self._inflight

    async def drain(self, seconds: float) -> bool:
        """Wait until no message is being handled; False if ``seconds`` ran out first."""
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True


async def _step(middleware: Middleware, call_next: Handler, ctx: TurnContext) -> None:
    await middleware(ctx, call_next)


def build_pipeline(deps: Deps, registry: CommandRegistry) -> Pipeline:
    """errors → chat order → dedup → identify → command? → top-up offer → tenant status → rate
    limit → turn.

    Chat order comes before everything that touches the database, so that two messages of one
    conversation are handled in the order they arrived, whichever channel brought them. The
    top-up offer wraps what may run out of tokens, to put payment links on that refusal.
    """
    return Pipeline(
        deps,
        [
            ErrorMiddleware(),
            ChatOrderMiddleware(),
            DedupMiddleware(deps.metering.holder, deps.turn.claim_lease),
            IdentifyMiddleware(),
            CommandMiddleware(registry),
            TopUpOfferMiddleware(),
            TenantStatusMiddleware(),
            RateLimitMiddleware(deps.turn.rate_limit_per_minute),
        ],
        AssistantTurn(),
    )
