"""The turn context every middleware sees, and the shapes of a middleware and a handler."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from core.envelope import InboundMessage, ReplySink
from core.i18n import Translator
from handlers.deps import Deps
from storage.config_cache import Freshness
from storage.models import Member, Tenant
from storage.repositories.updates import UpdateClaimRepository


@dataclass(slots=True)
class UpdateClaim:
    """This process's claim on the update being handled (see ``DedupMiddleware``).

    The stage that commits the turn's outcome marks the claim done in that same transaction,
    which saves the turn a transaction of its own; the middleware finishes it otherwise.
    """

    channel: str
    key: str
    holder: str
    done: bool = False

    async def finish(self, session: AsyncSession) -> None:
        """Mark the claim done inside ``session``'s transaction; set :attr:`done` once that has
        committed."""
        await UpdateClaimRepository(session).finish(self.channel, self.key, self.holder)


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
    #: Set by ``DedupMiddleware`` when the update has a key.
    claim: UpdateClaim | None = None
    #: The reader's language, resolved by ``IdentifyMiddleware`` (DESIGN §9); "" before that.
    language: str = ""
    #: The configuration version (and expected tenant's balance) read in the update's claim;
    #: ``IdentifyMiddleware`` reads it itself when there was no claim.
    freshness: Freshness | None = None

    @property
    def t(self) -> Translator:
        """The reader's translator: ``ctx.t("Hello {name}.", name=...)``. Before the member is
        known, the chat client's language (else ``DEFAULT_LANGUAGE``)."""
        translators = self.deps.translators
        client = self.message.language_code
        return translators.get(self.language or translators.resolve(chosen=None, client=client))

    def call_key(self, kind: str) -> str:
        """The idempotency key of this turn's ``kind`` provider call (``chat``, ...): stable for
        an update, so a duplicate delivery cannot make a second call."""
        msg = self.message
        update = msg.update_key if msg.update_key is not None else uuid.uuid4().hex
        return f"{msg.channel}:{update}:{kind}{self.attempt}"


Handler = Callable[[TurnContext], Awaitable[None]]


class Middleware(Protocol):
    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None: ...
