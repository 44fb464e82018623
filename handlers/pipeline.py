"""The middleware chain every inbound message goes through (DESIGN.md §2).

Like aiogram's outer middlewares: each middleware gets the turn context and the rest of the chain
as ``call_next``; it stops the chain by not calling it. Control flow is not an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from handlers.envelope import InboundMessage, ReplySink
from handlers.services import Services
from storage.models import Member, Tenant


@dataclass(slots=True)
class TurnContext:
    message: InboundMessage
    sink: ReplySink
    services: Services
    tenant: Tenant | None = None
    member: Member | None = None
    admin_role: str | None = None
    #: Set by the last stage that ran, for metrics and tests ("answered", "duplicate", ...).
    outcome: str = "unhandled"


Handler = Callable[[TurnContext], Awaitable[None]]


class Middleware(Protocol):
    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None: ...


class Pipeline:
    """Composes the middlewares once; :meth:`handle` runs one message through them."""

    def __init__(
        self, services: Services, middlewares: Sequence[Middleware], endpoint: Handler
    ) -> None:
        self.services = services
        chain: Handler = endpoint
        for middleware in reversed(middlewares):
            chain = partial(_step, middleware, chain)
        self._chain = chain
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def handle(self, message: InboundMessage, sink: ReplySink) -> TurnContext:
        ctx = TurnContext(message, sink, self.services)
        self._inflight += 1
        self._idle.clear()
        try:
            await self._chain(ctx)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()
        self.services.metrics.turns.labels(message.channel, ctx.outcome).inc()
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
