"""The turn context every middleware sees, and the shapes of a middleware and a handler."""

from __future__ import annotations

import uuid
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
    #: Set when this run took over the claim of a run cut short: its provider calls are new
    #: calls and need keys of their own.
    attempt: str = ""

    def call_key(self, kind: str) -> str:
        """The idempotency key of this turn's ``kind`` provider call (``chat``, ...): stable for
        an update, so a duplicate delivery cannot make a second call."""
        msg = self.message
        update = msg.update_key if msg.update_key is not None else uuid.uuid4().hex
        return f"{msg.channel}:{update}:{kind}{self.attempt}"


Handler = Callable[[TurnContext], Awaitable[None]]


class Middleware(Protocol):
    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None: ...
