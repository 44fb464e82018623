"""The pipeline's middlewares; :func:`handlers.pipeline.build_pipeline` says their order."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.exc import IntegrityError

from admin_commands.registry import Caller, CommandRegistry, split_command_line
from billing.holders import is_dead_local_holder
from core.envelope import ActivitySink, InboundMessage
from core.errors import SwitchboardError, TenantUnavailable
from core.i18n import N_, Text, lazy
from handlers.context import ClaimTaken, Handler, TurnContext, UpdateClaim
from handlers.topup import TRIAL_ENDED
from handlers.turn import shown_answer
from storage.config_cache import read_freshness
from storage.models import Tenant
from storage.repositories.conversations import ConversationRepository
from storage.repositories.tenants import (
    BindingRepository,
    MemberRepository,
    TenantRepository,
    member_needs_update,
    needs_touch,
)
from storage.repositories.updates import UpdateClaimRepository
from storage.transient import retry_transient

log = logging.getLogger(__name__)

# Marked here, translated when sent (``ctx.t(UNBOUND_EXPLANATION)``).
UNBOUND_EXPLANATION = N_(
    "This chat is not linked to an organisation yet. "
    "Send /start CODE with the invite code your administrator gave you."
)
BLOCKED_EXPLANATION = N_("Your access to this organisation is blocked. Ask its administrator.")
#: Commands an unbound chat may run; everything else gets the explanation.
_UNBOUND_COMMANDS = {"start", "help", "join"}


class ErrorMiddleware:
    """The only place an error becomes a reply. Secrets never reach the chat: deliberate errors
    carry a user-facing message, anything else gets a generic one and a log line."""

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None:
        try:
            await call_next(ctx)
        except SwitchboardError as exc:
            ctx.outcome = f"refused:{type(exc).__name__}"
            ctx.deps.metrics.errors.labels(type(exc).__name__).inc()
            # Refusals are answers (a usage line, a permission): not worth a line each at INFO.
            log.debug("turn refused: %s", exc)
            text = exc.localized(ctx.t)
            if exc.buttons:
                await ctx.sink.send_buttons(text, exc.buttons)
            else:
                await ctx.sink.send_text(text)
        except Exception:
            ctx.outcome = "error"
            ctx.deps.metrics.errors.labels("unexpected").inc()
            log.exception("unexpected error handling %s message", ctx.message.channel)
            await ctx.sink.send_text(ctx.t(SwitchboardError.user_message))


class ChatOrderMiddleware:
    """Messages of one conversation are handled one after another, in arrival order.

    A user who sends two messages quickly gets the second answered with the first already in the
    conversation, in every channel. Keyed by channel, chat and thread, so other chats (and other
    Slack threads) never wait. :class:`asyncio.Lock` wakes waiters first come, first served.
    """

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str, str], _ChatLock] = {}

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None:
        msg = ctx.message
        key = (msg.channel, msg.chat_key, msg.thread_key)
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = _ChatLock()
        entry.users += 1
        try:
            async with entry.lock:
                await call_next(ctx)
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[key]

    @property
    def active_chats(self) -> int:
        return len(self._locks)


class _ChatLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class DedupMiddleware:
    """Each update is handled once, across retries and processes, and none is lost to a crash.

    The first process to insert the update's claim (``processing``, with its holder and a
    lease) handles it; the unique constraint turns every other attempt away. The claim is marked
    ``done`` when the turn ends, by the turn's own transaction when it has one
    (:class:`~handlers.context.UpdateClaim`). A turn cut short (the process killed, or the task
    cancelled at shutdown) leaves it ``processing``: a redelivery of the update may then take it
    over once its holder is gone or its lease ran out, and if none comes the user is told to ask
    again (:mod:`handlers.recovery`).

    An answer is committed before its final message is sent, so the transaction saving it marks
    the claim ``answered`` (with the answer), and this middleware marks it ``done`` once the
    message is out. A run cut short in between leaves an answer to deliver: a redelivery sends
    it as it was saved (no second call, no second charge), else the sweep does. Killed between
    sending and marking, the answer goes out twice: at least once, never lost.
    """

    def __init__(self, holder: str, lease: timedelta) -> None:
        self._holder = holder
        self._lease = lease

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None:
        key = ctx.message.update_key
        if key is None:
            await call_next(ctx)
            return
        if _deferrable(ctx.message):
            claim = self._pending(ctx, key)
            async with ctx.deps.sessions.quick() as session:
                ctx.freshness = await read_freshness(
                    session,
                    ctx.deps.config_cache.expected_tenant(
                        ctx.message.channel, ctx.message.scope_key
                    ),
                )
        else:
            taken = await self._claim(ctx, key)
            if taken is None:
                ctx.outcome = "duplicate"
                return
            claim = taken
        ctx.claim = claim
        try:
            try:
                if claim.redeliver is not None:
                    await self._redeliver(ctx, claim.redeliver)
                else:
                    await call_next(ctx)
            except ClaimTaken:
                # Claimed before this turn's reservation could: nothing of it was written.
                ctx.claim = None
                taken = await self._claim(ctx, key)
                if taken is None:
                    ctx.outcome = "duplicate"
                    return
                ctx.claim = claim = taken
                ctx.freshness = None
                if claim.redeliver is not None:
                    await self._redeliver(ctx, claim.redeliver)
                else:
                    await call_next(ctx)
        except asyncio.CancelledError:
            raise  # unfinished on purpose: see the class docstring
        except BaseException:
            await self._finish(ctx, key)
            raise
        await self._finish(ctx, key)

    async def _redeliver(self, ctx: TurnContext, message_id: int) -> None:
        """Send the answer a run cut short saved but did not deliver, as that run would have:
        nothing is asked of the assistant again and nothing charged again."""
        async with ctx.deps.sessions.quick() as session:
            text = await ConversationRepository(session).message_text(message_id)
        if text is None:  # its conversation was deleted since: nothing left to deliver
            ctx.outcome = "duplicate"
            return
        msg = ctx.message
        log.warning("delivering the saved answer of %s update %s", msg.channel, msg.update_key)
        await ctx.sink.open_stream().finish(shown_answer(ctx, text))
        assert ctx.claim is not None
        ctx.claim.answered = ctx.claim.delivered = True
        ctx.outcome = "redelivered"

    def _pending(self, ctx: TurnContext, key: str) -> UpdateClaim:
        msg = ctx.message
        now = ctx.deps.clock()
        return UpdateClaim(
            msg.channel,
            key,
            self._holder,
            pending=True,
            lease_expires_at=now + self._lease,
            reply_to=reply_address(msg),
            claimed_at=now,
        )

    async def _claim(self, ctx: TurnContext, key: str) -> UpdateClaim | None:
        """This process's claim on the update: new, or taken over from a run cut short;
        ``None`` when another run holds it or finished it (a duplicate)."""
        # Claims go ahead of longer write transactions: nothing shows until the claim is in.
        msg = ctx.message
        sessions = ctx.deps.sessions
        now = ctx.deps.clock()
        try:
            async with sessions.begin(ahead=True) as session:
                UpdateClaimRepository(session).add(
                    msg.channel,
                    key,
                    holder=self._holder,
                    lease_expires_at=now + self._lease,
                    reply_to=reply_address(msg),
                    now=now,
                )
                # The configuration version rides on the claim (see storage.config_cache).
                expected = ctx.deps.config_cache.expected_tenant(msg.channel, msg.scope_key)
                freshness = await read_freshness(session, expected)
            ctx.freshness = freshness
            return UpdateClaim(msg.channel, key, self._holder)
        except IntegrityError:
            pass
        async with sessions.begin(ahead=True) as session:
            taken = await UpdateClaimRepository(session).take_over(
                msg.channel,
                key,
                holder=self._holder,
                lease_expires_at=now + self._lease,
                now=now,
                is_gone=is_dead_local_holder,
            )
        if taken is None:
            return None
        log.warning("took over %s update %s from a run cut short", msg.channel, key)
        ctx.attempt = f":retry-{uuid.uuid4().hex[:8]}"
        claim = UpdateClaim(msg.channel, key, self._holder)
        if taken.state == "answered":
            claim.redeliver = taken.answer_message_id
        return claim

    async def _finish(self, ctx: TurnContext, key: str) -> None:
        claim = ctx.claim
        if claim is not None and claim.done:
            return  # finished with the turn's own transaction
        if claim is not None and claim.answered and not claim.delivered:
            # Saved, not delivered (the channel failed): the claim stays answered, and once its
            # lease runs out the interrupted-turns sweep delivers the answer (handlers.recovery).
            return

        if claim is not None and claim.answered:
            # Delivered: one short write, batched with the other turns' (group commit), once
            # the chat's next message is free to start (see Pipeline.handle).
            async def delivered() -> None:
                await ctx.deps.sessions.run_grouped(claim.finish)

            ctx.after.append(
                partial(retry_transient, delivered, seconds=30, what="marking an answer sent")
            )
            return

        async def attempt() -> None:
            async with ctx.deps.sessions.begin() as session:
                if claim is not None and claim.pending:
                    # Never written (the turn was refused before reserving): written done.
                    with suppress(ClaimTaken):
                        async with session.begin_nested():
                            await claim.join_done(session)
                    return
                await UpdateClaimRepository(session).finish(ctx.message.channel, key, self._holder)

        await retry_transient(attempt, seconds=30, what="marking an update handled")


def _deferrable(message: InboundMessage) -> bool:
    """Whether the claim may wait for the turn's reservation: a plain text message (no
    command, no attachment) does nothing before its assistant call that would matter twice."""
    return not message.attachments and not message.text.lstrip().startswith("/")


def reply_address(message: InboundMessage) -> dict[str, str | bool]:
    """What a chat needs to be written to later (read back by ``billing.notices.address_of``)."""
    return {
        "chat_key": message.chat_key,
        "thread_key": message.thread_key,
        "scope_key": message.scope_key,
        "user_id": message.user_id,
        "private": message.is_private,
    }


class IdentifyMiddleware:
    """Finds the tenant bound to the chat, the member, and the sender's platform role.

    Read from the process's :class:`~storage.config_cache.ConfigCache`, valid for the
    configuration version read with the update's claim (or here, without one), so a change
    made anywhere is seen on the next turn; what is not cached is read in one read-only
    transaction. The write transaction (a new member, or activity times at most once a minute,
    see ``ACTIVITY_RESOLUTION``) follows only when there is something to write, which spares
    most turns a place in the writer queue.
    """

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None:
        msg = ctx.message
        now = ctx.deps.clock()
        cache = ctx.deps.config_cache
        fresh = ctx.freshness
        if fresh is None:  # no claim (an update without a key): read the version here
            async with ctx.deps.sessions.quick() as session:
                expected = cache.expected_tenant(msg.channel, msg.scope_key)
                fresh = await read_freshness(session, expected)
            ctx.freshness = fresh  # the turn's cached reads (assistants) go by it too
        identity = await cache.identify(
            ctx.deps.sessions,
            fresh,
            channel=msg.channel,
            scope_key=msg.scope_key,
            user_id=msg.user_id,
        )
        ctx.admin_role, ctx.tenant, ctx.member = (
            identity.admin_role,
            identity.tenant,
            identity.member,
        )
        tenant, member = ctx.tenant, ctx.member
        if tenant is not None and (
            member is None
            or member_needs_update(member, msg.user_name, now)
            or needs_touch(tenant, now)
        ):
            generation = cache.generation
            try:
                await self._write(ctx, now)
            except IntegrityError:
                # Another process created the member at the same moment (two updates of a new
                # user, or one update delivered to two processes): it exists now.
                await self._write(ctx, now)
            if generation == cache.generation:  # read after the version the cache holds
                cache.remember(msg.channel, msg.scope_key, ctx.tenant, ctx.member)
        ctx.language = ctx.deps.translators.resolve(
            chosen=ctx.member.language if ctx.member is not None else None,
            client=msg.language_code,
            tenant=ctx.tenant.language if ctx.tenant is not None else None,
        )
        if ctx.member is not None and ctx.member.blocked_at is not None and not ctx.admin_role:
            ctx.outcome = "blocked"  # /tenant block: no command, no assistant call
            await ctx.sink.send_text(ctx.t(BLOCKED_EXPLANATION))
            return
        if ctx.tenant is None and ctx.admin_role is None and not _is_unbound_command(msg.text):
            ctx.outcome = "unbound"
            await ctx.sink.send_text(ctx.t(UNBOUND_EXPLANATION))
            return
        await call_next(ctx)

    @staticmethod
    async def _write(ctx: TurnContext, now: datetime) -> None:
        """Create the member, or note its and the tenant's activity."""
        msg = ctx.message
        async with ctx.deps.sessions.begin(ahead=True, quick=True) as session:
            ctx.tenant = await BindingRepository(session).tenant_for(msg.channel, msg.scope_key)
            if ctx.tenant is not None:
                ctx.member = await MemberRepository(session).get_or_create(
                    ctx.tenant.id, msg.channel, msg.user_id, msg.user_name, now
                )
                TenantRepository(session).touch(ctx.tenant, now)


def _is_unbound_command(text: str) -> bool:
    argv = split_command_line(text) if text.startswith("/") else []
    return bool(argv) and argv[0].lower() in _UNBOUND_COMMANDS


class CommandMiddleware:
    """Messages starting with ``/`` go to the command registry instead of an assistant."""

    def __init__(self, registry: CommandRegistry) -> None:
        self._registry = registry

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None:
        text = ctx.message.text.strip()
        if not text.startswith("/"):
            await call_next(ctx)
            return
        msg = ctx.message
        caller = Caller(
            channel=msg.channel,
            user_id=msg.user_id,
            role=ctx.admin_role,
            tenant=ctx.tenant,
            member=ctx.member,
            chat_key=msg.chat_key,
            thread_key=msg.thread_key,
            scope_key=msg.scope_key,
            is_private=msg.is_private,
            user_name=msg.user_name,
            language=ctx.language,
            client_language=msg.language_code,
        )
        # A slow command (/image) shows the chat's "uploading photo…" through the reply sink.
        activity = ctx.sink if isinstance(ctx.sink, ActivitySink) else None
        argv = split_command_line(text)
        result = await self._registry.dispatch(argv, caller, ctx.deps, activity)
        ctx.outcome = "command"
        try:
            if result.buttons:
                await ctx.sink.send_buttons(result.text, result.buttons)
            elif result.text:
                await ctx.sink.send_text(result.text)
            for file in result.files:
                await ctx.sink.send_file(file)
        finally:
            for file in result.files:
                file.discard()


class TenantStatusMiddleware:
    """Only tenants in good standing reach an assistant; admins in unbound chats stop here."""

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None:
        tenant = ctx.tenant
        if tenant is None:
            ctx.outcome = "unbound"
            await ctx.sink.send_text(ctx.t(UNBOUND_EXPLANATION))
            return
        if tenant.status == "suspended":
            raise TenantUnavailable(
                tenant.slug,
                "suspended",
                lazy("This organisation's access is suspended. Please contact your provider."),
            )
        if (
            tenant.status == "trial"
            and tenant.trial_ends_at is not None
            and tenant.trial_ends_at <= ctx.deps.clock()
        ):
            raise TenantUnavailable(tenant.slug, TRIAL_ENDED, _trial_ended(ctx, tenant))
        await call_next(ctx)


def _trial_ended(ctx: TurnContext, tenant: Tenant) -> Text:
    """Where payments are taken, the way on is to pay (the top-up offer adds the links);
    otherwise, and for a postpaid tenant (invoiced, nothing to buy), it is the provider."""
    if ctx.deps.checkout is not None and tenant.plan != "postpaid":
        return lazy(
            "Your trial has ended. To continue, buy tokens with /buy or subscribe to a plan."
        )
    return lazy("Your trial has ended. Please contact your provider to continue.")


class RateLimitMiddleware:
    """At most ``per_minute`` assistant turns per member per process (a sliding window).

    Per process on purpose: it protects providers from one chatty user; budgets, which must hold
    across processes, are enforced in the database by metering.
    """

    def __init__(self, per_minute: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._limit = per_minute
        self._monotonic = monotonic
        self._seen: defaultdict[str, deque[float]] = defaultdict(deque)

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None:
        if self._limit <= 0:
            await call_next(ctx)
            return
        key = f"{ctx.message.channel}:{ctx.message.user_id}"
        now = self._monotonic()
        window = self._seen[key]
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) >= self._limit:
            ctx.outcome = "rate_limited"
            await ctx.sink.send_text(
                ctx.t("You are sending messages too fast. Please wait a minute and try again.")
            )
            return
        window.append(now)
        await call_next(ctx)
