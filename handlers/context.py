"""The turn context every middleware sees, and the shapes of a middleware and a handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from core.envelope import InboundMessage, ReplySink
from handlers.deps import Deps
from storage.models import Member, Tenant


@dataclass(slots=True)
class TurnContext:
    message: InboundMessage
    sink: ReplySink
    deps: Deps
    tenant: Tenant | None = None
    member: Member | None = None
    admin_role: str | None = None
    #: Set by the last stage that ran, for metrics and tests ("answered", "duplicate", ...).
    outcome: str = "unhandled"


Handler = Callable[[TurnContext], Awaitable[None]]


class Middleware(Protocol):
    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None: ...
