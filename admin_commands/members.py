"""Commands every member of a bound chat may run (the library has its own module)."""

from __future__ import annotations

from admin_commands.common import audit, money_str, target_tenant
from admin_commands.language import translator
from admin_commands.payments import payment_json, payment_line
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.roles import minimum_role
from admin_commands.values import slug
from core.clock import month_start
from core.envelope import ChatAddress
from core.errors import ConflictError, NotFoundError, UsageError
from core.i18n import N_, lazy
from core.money import from_micros, to_micros
from storage.repositories.assistants import AssistantRepository
from storage.repositories.conversations import ConversationRepository
from storage.repositories.payments import PaymentRepository
from storage.repositories.tenants import BindingRepository, InviteRepository
from storage.repositories.usage import UsageRepository

#: Moving a chat that is already linked to one tenant over to another.
REBIND_PERMISSION = "tenants.write"
#: Payments listed by /usage (all of them: /payments, for admins).
PAYMENTS_SHOWN = 5


commands = CommandGroup()


@commands.command("start", audience="public", unbound_ok=True, arguments=[Arg("code", nargs="?")])
@commands.command("join", audience="public", unbound_ok=True, arguments=[Arg("code")])
async def start(ctx: CommandContext) -> CommandResult:
    """Link this chat to your organisation with an invite code."""
    code: str | None = ctx.args.code
    caller = ctx.caller
    t = translator(ctx)
    if not code:
        if caller.tenant is not None:
            return CommandResult(
                t(
                    "Hello! This chat uses the assistants of {name}. "
                    "Just write a message, or see /help.",
                    name=caller.tenant.name,
                )
            )
        raise UsageError(ctx.command.usage, lazy("Send the invite code you were given."))
    deps = ctx.deps
    scope = f"{caller.channel}:{caller.scope_key}"
    async with deps.sessions.begin() as session:
        invites = InviteRepository(session)
        bindings = BindingRepository(session)
        invite = await invites.lookup(code)
        # The binding as it stands in this transaction, not as the pipeline saw it earlier.
        current = await bindings.tenant_for(caller.channel, caller.scope_key)
        if current is not None and current.id == invite.tenant_id:
            # Often the very code used here, sent again: nothing to do, and a code not yet
            # used stays good for another chat.
            already = (
                t("This chat is already linked to {name}.", name=current.name)
                if caller.is_private
                else t("This group is already linked to {name}.", name=current.name)
            )
            return CommandResult(
                already,
                data={"tenant": current.slug, "scope": caller.scope_key, "already_linked": True},
            )
        if current is not None and not caller.can(REBIND_PERMISSION):
            # Anyone in a group may hold another tenant's code; moving the group would hand
            # its members that tenant's library and balance.
            refusal = (
                N_(
                    "This chat is already linked to {name}. Only a platform admin ({role} role) "
                    "can link it to another organisation; the invite code was not used."
                )
                if caller.is_private
                else N_(
                    "This group is already linked to {name}. Only a platform admin ({role} "
                    "role) can link it to another organisation; the invite code was not used."
                )
            )
            raise ConflictError(
                f"{scope} is bound to {current.slug}; rebinding refused",
                user_message=lazy(refusal, name=current.name, role=minimum_role(REBIND_PERMISSION)),
            )
        tenant = await invites.redeem(code, now=deps.clock(), used_by=caller.actor)
        # Where the tenant's invoices and notices will go: the chat the code was sent from.
        bound_from = ChatAddress(
            caller.channel, caller.chat_key, user_id=caller.user_id,
            thread_key=caller.thread_key, is_private=caller.is_private,
        )  # fmt: skip
        await bindings.bind(tenant, caller.channel, caller.scope_key, bound_from.to_json())
        if current is None:
            await audit(
                session, ctx, "chat.bind", scope, None, {"tenant": tenant.slug}, tenant=tenant
            )
        else:
            await audit(
                session,
                ctx,
                "chat.rebind",
                scope,
                {"tenant": current.slug},
                {"tenant": tenant.slug},
                tenant=tenant,
            )
    if caller.member is None or not caller.member.language:
        # The language was resolved before the chat had a tenant: the tenant's counts now.
        t = deps.translators.get(
            deps.translators.resolve(
                chosen=None, client=caller.client_language, tenant=tenant.language
            )
        )
    if current is None:
        linked = (
            t("Welcome! This chat is now linked to {name}.", name=tenant.name)
            if caller.is_private
            else t("Welcome! This group is now linked to {name}.", name=tenant.name)
        )
    else:
        linked = (
            t("Welcome! This chat is now linked to {name} (moved from {old}).",
              name=tenant.name, old=current.name)
            if caller.is_private
            else t("Welcome! This group is now linked to {name} (moved from {old}).",
                   name=tenant.name, old=current.name)
        )  # fmt: skip
    welcome = [linked, t("Write a message to talk to your assistant, or see /help.")]
    return CommandResult(
        " ".join(welcome),
        data={"tenant": tenant.slug, "scope": caller.scope_key},
    )


@commands.command("help", audience="public", unbound_ok=True)
async def help_(ctx: CommandContext) -> CommandResult:
    """Show the commands you can run."""
    visible = [c for c in ctx.registry if c.visible_to(ctx.caller)]
    lines = [translator(ctx).gettext("Commands:")]
    lines += [f"{c.usage} — {c.summary}" for c in visible]
    return CommandResult(
        "\n".join(lines),
        data=[{"command": c.name, "usage": c.usage, "help": c.summary} for c in visible],
    )


@commands.command("assistants", audience="member")
async def assistants(ctx: CommandContext) -> CommandResult:
    """List the assistants this chat may use."""
    caller = ctx.caller
    t = translator(ctx)
    async with ctx.deps.sessions() as session:
        available = await AssistantRepository(session).available_to(ctx.tenant.id)
        preferred = await ConversationRepository(session).preferred_assistant(
            ctx.tenant.id, caller.channel, caller.chat_key
        )
    lines = [t("Assistants (pick one with /use SLUG):")]
    current = " " + t("(current)")
    for a in available:
        mark = current if a.assistant.id == preferred else ""
        lines.append(f"• {a.slug} — {a.display_name}: {a.assistant.description}{mark}")
    return CommandResult(
        "\n".join(lines),
        data=[
            {
                "slug": a.slug,
                "name": a.display_name,
                "model": a.assistant.model,
                "provider": a.assistant.provider,
                "current": a.assistant.id == preferred,
            }
            for a in available
        ],
    )


@commands.command("use", audience="member", arguments=[Arg("slug", type=slug)])
async def use(ctx: CommandContext) -> CommandResult:
    """Pick the assistant for this chat."""
    caller = ctx.caller
    deps = ctx.deps
    async with deps.sessions.begin() as session:
        try:
            chosen = await AssistantRepository(session).resolve(ctx.tenant.id, ctx.args.slug)
        except NotFoundError:
            raise UsageError(
                ctx.command.usage,
                lazy("No assistant '{slug}' here; see /assistants.", slug=ctx.args.slug),
            ) from None
        await ConversationRepository(session).set_preferred_assistant(
            ctx.tenant.id, caller.channel, caller.chat_key, chosen.assistant.id, deps.clock()
        )
    return CommandResult(
        translator(ctx).gettext("Now talking to {name}.", name=chosen.display_name),
        data={"assistant": chosen.slug},
    )


@commands.command("new", audience="member")
async def new(ctx: CommandContext) -> CommandResult:
    """Start a fresh conversation (the assistant forgets this chat's history)."""
    caller = ctx.caller
    async with ctx.deps.sessions.begin() as session:
        closed = await ConversationRepository(session).close(
            ctx.tenant.id, caller.channel, caller.chat_key, caller.thread_key, ctx.deps.clock()
        )
    return CommandResult(
        translator(ctx).gettext("Started a new conversation."), data={"closed": closed}
    )


@commands.command(
    "usage", audience="member", unbound_ok=True, arguments=[Arg("--tenant", type=slug)]
)
async def usage(ctx: CommandContext) -> CommandResult:
    """Your token balance, this month's usage and your latest payments."""
    deps = ctx.deps
    async with deps.sessions() as session:
        tenant = await target_tenant(ctx, session)
        repo = UsageRepository(session)
        totals = await repo.totals(tenant.id, month_start(deps.clock()))
        events = await repo.recent(tenant.id, limit=20)
        payments = await PaymentRepository(session).list(tenant_id=tenant.id, limit=PAYMENTS_SHOWN)
    cost = to_micros(deps.config.conversion.amount(totals.costs))
    currency = deps.config.billing_currency
    t = translator(ctx)
    text = "\n".join(
        (
            t(
                "{tenant}: {balance} tokens left ({reserved} in use).",
                tenant=tenant.name,
                balance=t.number(tenant.token_balance),
                reserved=t.number(tenant.tokens_reserved),
            ),
            t(
                "This month: {calls}, {input} in / {output} out tokens, cost {cost} {currency}.",
                calls=t.ngettext("{n} call", "{n} calls", totals.calls),
                input=t.number(totals.input_tokens),
                output=t.number(totals.output_tokens),
                cost=t.number(from_micros(cost)),
                currency=currency,
            ),
        )
    )
    if payments:
        text += (
            "\n"
            + t("Recent payments:")
            + "\n"
            + "\n".join(payment_line(p, None, t) for p in payments)
        )
    return CommandResult(
        text,
        data={
            "tenant": tenant.slug,
            "token_balance": tenant.token_balance,
            "tokens_reserved": tenant.tokens_reserved,
            "period": {
                "calls": totals.calls,
                "failed": totals.failed,
                "input_tokens": totals.input_tokens,
                "output_tokens": totals.output_tokens,
                "cost": money_str(cost),
                "currency": currency,
            },
            "events": [
                {
                    "id": e.id,
                    "idempotency_key": e.idempotency_key,
                    "status": e.status,
                    "kind": e.kind,
                    "provider": e.provider,
                    "model": e.model,
                    "input_tokens": e.input_tokens,
                    "cached_input_tokens": e.cached_input_tokens,
                    "output_tokens": e.output_tokens,
                    "reasoning_tokens": e.reasoning_tokens,
                    "charged_tokens": e.charged_tokens,
                    "cost": money_str(e.cost_micros),
                    "cost_currency": e.cost_currency,
                    "priced": e.priced,
                    "latency_ms": e.latency_ms,
                    "error": e.error,
                    "created_at": e.created_at.isoformat(),
                }
                for e in events
            ],
            "payments": [payment_json(p, tenant.slug) for p in payments],
        },
    )
