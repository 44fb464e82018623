"""The turn context every middleware sees, and the shapes of a middleware and a handler."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.envelope import InboundMessage, ReplySink
from core.i18n import Translator
from handlers.deps import Deps
from storage.config_cache import Freshness
from storage.models import Member, Tenant
from storage.repositories.updates import UpdateClaimRepository
from storage.states import ClaimState


class ClaimTaken(Exception):
    """A deferred claim could not be written: the update is claimed already (a redelivery, or
    another process). Raised out of the transaction that tried, which rolls back with it;
    ``DedupMiddleware`` then decides as for any claimed update. Control flow, not an error."""


@dataclass(slots=True)
class UpdateClaim:
    """This process's claim on the update being handled (see ``DedupMiddleware``).

    The stage that commits the turn's outcome marks the claim done in that same transaction,
    which saves the turn a transaction of its own; the middleware finishes it otherwise.

    A *pending* claim (a plain text message, which does nothing before its assistant call
    that matters twice) is not written yet: it is inserted by the turn's first write, the
    reservation (:meth:`join`), so claim and reservation are one transaction; if the turn
    never reserves (a refusal), the middleware inserts it ``done`` at the end.
    """

    channel: str
    key: str
    holder: str
    done: bool = False
    pending: bool = False
    lease_expires_at: datetime | None = None
    reply_to: Mapping[str, str | bool] = field(default_factory=dict)
    claimed_at: datetime | None = None
    #: The answer is saved with the claim ``answered`` (committed): the claim is marked done
    #: once the answer has been :attr:`delivered`, and left ``answered`` otherwise.
    answered: bool = False
    delivered: bool = False
    #: Set when this claim was taken over from a run that saved its answer but died before
    #: delivering it: the answer's message, to deliver instead of answering again.
    redeliver: int | None = None

    async def finish(self, session: AsyncSession) -> None:
        """Mark the claim done inside ``session``'s transaction; set :attr:`done` once that has
        committed."""
        await UpdateClaimRepository(session).finish(self.channel, self.key, self.holder)

    async def answer(self, session: AsyncSession, message_id: int) -> None:
        """Mark the claim answered by ``message_id`` inside ``session``'s transaction (the one
        saving it); set :attr:`answered` once that has committed."""
        await UpdateClaimRepository(session).answered(
            self.channel, self.key, self.holder, message_id
        )

    async def join(self, session: AsyncSession) -> None:
        """Write a pending claim in ``session``'s transaction (first, so a duplicate stops
        before anything else); whoever commits that transaction then calls :meth:`committed`."""
        if not self.pending:
            return
        try:
            await self.insert(session, "processing")
        except IntegrityError:
            raise ClaimTaken(self.key) from None

    def committed(self) -> None:
        """The transaction :meth:`join` wrote in has committed: the claim is written."""
        self.pending = False

    async def join_done(self, session: AsyncSession) -> None:
        """Write a pending claim already ``done`` (the turn ended without a reservation)."""
        try:
            await self.insert(session, "done")
        except IntegrityError:
            raise ClaimTaken(self.key) from None
        self.pending = False

    async def insert(self, session: AsyncSession, state: ClaimState) -> None:
        assert self.claimed_at is not None
        await UpdateClaimRepository(session).insert(
            self.channel,
            self.key,
            holder=self.holder,
            lease_expires_at=self.lease_expires_at if state == "processing" else None,
            reply_to=self.reply_to,
            now=self.claimed_at,
            state=state,
        )


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
    #: Bookkeeping the pipeline runs once the chain has returned, after the chat's next
    #: message may start (the claim's "delivered" mark).
    after: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def t(self) -> Translator:
        """The reader's translator: ``ctx.t("Hello {name}.", name=...)``. Before the member is
        known, the chat client's language (else ``DEFAULT_LANGUAGE``)."""
        translators = self.deps.translators
        client = self.message.language_code
        return translators.get(self.language or translators.resolve(chosen=None, client=client))

    async def write_claim(self) -> None:
        """Write a pending claim now (before a paid call that does not reserve through
        the turn's :meth:`UpdateClaim.join`)."""
        claim = self.claim
        if claim is not None and claim.pending:
            async with self.deps.sessions.begin(ahead=True) as session:
                await claim.join(session)
            claim.committed()

    def call_key(self, kind: str) -> str:
        """The idempotency key of this turn's ``kind`` provider call (``chat``, ...): stable for
        an update, so a duplicate delivery cannot make a second call."""
        msg = self.message
        update = msg.update_key if msg.update_key is not None else uuid.uuid4().hex
        return f"{msg.channel}:{update}:{kind}{self.attempt}"


Handler = Callable[[TurnContext], Awaitable[None]]


class Middleware(Protocol):
    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None: ...
