"""The pipeline's middlewares, outermost first (see :func:`handlers.build_pipeline`)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError

from admin_commands.registry import Caller, split_command_line
from bot.errors import SwitchboardError, TenantUnavailable
from handlers.pipeline import Handler, TurnContext
from storage.repositories.admins import AdminRepository, ProcessedUpdateRepository
from storage.repositories.tenants import BindingRepository, MemberRepository, TenantRepository

log = logging.getLogger(__name__)

UNBOUND_EXPLANATION = (
    "This chat is not linked to an organisation yet. "
    "Send /start CODE with the invite code your administrator gave you."
)
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
            ctx.services.metrics.errors.labels(type(exc).__name__).inc()
            log.info("turn refused: %s", exc)
            await ctx.sink.send_text(exc.user_message)
        except Exception:
            ctx.outcome = "error"
            ctx.services.metrics.errors.labels("unexpected").inc()
            log.exception("unexpected error handling %s message", ctx.message.channel)
            await ctx.sink.send_text(SwitchboardError.user_message)


class DedupMiddleware:
    """Each update is handled once, across retries and processes: the first to insert its key
    into ``processed_updates`` wins; the unique constraint turns every other attempt away."""

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None:
        key = ctx.message.update_key
        if key is None:
            await call_next(ctx)
            return
        try:
            async with ctx.services.sessions.begin() as session:
                ProcessedUpdateRepository(session).add(ctx.message.channel, key)
        except IntegrityError:
            ctx.outcome = "duplicate"
            return
        await call_next(ctx)


class IdentifyMiddleware:
    """Finds the tenant bound to the chat, the member, and the sender's platform role."""

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None:
        msg = ctx.message
        now = ctx.services.clock()
        async with ctx.services.sessions.begin() as session:
            ctx.admin_role = await AdminRepository(session).role_of(msg.channel, msg.user_id)
            ctx.tenant = await BindingRepository(session).tenant_for(msg.channel, msg.scope_key)
            if ctx.tenant is not None:
                ctx.member = await MemberRepository(session).get_or_create(
                    ctx.tenant.id, msg.channel, msg.user_id, msg.user_name, now
                )
                TenantRepository(session).touch(ctx.tenant, now)
        if ctx.tenant is None and ctx.admin_role is None and not _is_unbound_command(msg.text):
            ctx.outcome = "unbound"
            await ctx.sink.send_text(UNBOUND_EXPLANATION)
            return
        await call_next(ctx)


def _is_unbound_command(text: str) -> bool:
    argv = split_command_line(text) if text.startswith("/") else []
    return bool(argv) and argv[0].lower() in _UNBOUND_COMMANDS


class CommandMiddleware:
    """Messages starting with ``/`` go to the command registry instead of an assistant."""

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
        )
        services = ctx.services
        result = await services.commands.dispatch(split_command_line(text), caller, services)
        ctx.outcome = "command"
        if result.text:
            await ctx.sink.send_text(result.text)
        for file in result.files:
            await ctx.sink.send_file(file)


class TenantStatusMiddleware:
    """Only tenants in good standing reach an assistant; admins in unbound chats stop here."""

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> None:
        tenant = ctx.tenant
        if tenant is None:
            ctx.outcome = "unbound"
            await ctx.sink.send_text(UNBOUND_EXPLANATION)
            return
        if tenant.status == "suspended":
            raise TenantUnavailable(
                tenant.slug,
                "suspended",
                "This organisation's access is suspended. Please contact your provider.",
            )
        if (
            tenant.status == "trial"
            and tenant.trial_ends_at is not None
            and tenant.trial_ends_at <= ctx.services.clock()
        ):
            raise TenantUnavailable(
                tenant.slug,
                "trial ended",
                "Your trial has ended. Please contact your provider to continue.",
            )
        await call_next(ctx)


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
                "You are sending messages too fast. Please wait a minute and try again."
            )
            return
        window.append(now)
        await call_next(ctx)
