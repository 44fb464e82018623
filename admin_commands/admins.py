"""Platform admins: ``/admin add|remove|list``."""

from __future__ import annotations

from admin_commands.common import audit
from admin_commands.registry import Arg, CommandContext, CommandRegistry, CommandResult
from admin_commands.roles import ROLES
from bot.errors import UsageError
from storage.repositories.admins import AdminRepository

IDENTITY_HELP = "IDENTITY is CHANNEL:ID, e.g. telegram:12345 or slack:T0001/U0001"


def register(registry: CommandRegistry) -> None:
    registry.command(
        "admin add",
        usage="/admin add IDENTITY ROLE",
        permission="admins.write",
        arguments=[Arg("identity"), Arg("role", choices=ROLES)],
    )(add)
    registry.command(
        "admin remove",
        usage="/admin remove IDENTITY",
        permission="admins.write",
        arguments=[Arg("identity")],
    )(remove)
    registry.command("admin list", usage="/admin list", permission="admins.write")(list_)


def _identity(ctx: CommandContext) -> tuple[str, str]:
    channel, sep, ident = str(ctx.args.identity).partition(":")
    if not sep or not ident or channel not in ("telegram", "slack", "console"):
        raise UsageError(ctx.command.usage, IDENTITY_HELP)
    return channel, ident


async def add(ctx: CommandContext) -> CommandResult:
    """Grant a platform role to a chat identity."""
    channel, ident = _identity(ctx)
    async with ctx.services.sessions.begin() as session:
        previous = await AdminRepository(session).upsert(
            channel, ident, ctx.args.role, ctx.caller.actor
        )
        await audit(
            session,
            ctx,
            "admin.add",
            f"{channel}:{ident}",
            {"role": previous} if previous else None,
            {"role": ctx.args.role},
        )
    return CommandResult(
        f"{channel}:{ident} is now {ctx.args.role}.",
        data={"identity": f"{channel}:{ident}", "role": ctx.args.role, "previous": previous},
    )


async def remove(ctx: CommandContext) -> CommandResult:
    """Revoke a platform role."""
    channel, ident = _identity(ctx)
    if ctx.caller.channel == channel and ctx.caller.user_id == ident:
        raise UsageError(ctx.command.usage, "You cannot remove yourself.")
    async with ctx.services.sessions.begin() as session:
        repo = AdminRepository(session)
        previous = await repo.role_of(channel, ident)
        removed = await repo.remove(channel, ident)
        if removed:
            await audit(
                session, ctx, "admin.remove", f"{channel}:{ident}", {"role": previous}, None
            )
    text = f"Removed {channel}:{ident}." if removed else f"{channel}:{ident} was not an admin."
    return CommandResult(text, data={"identity": f"{channel}:{ident}", "removed": removed})


async def list_(ctx: CommandContext) -> CommandResult:
    """List platform admins and their roles."""
    async with ctx.services.sessions() as session:
        admins = await AdminRepository(session).list()
    lines = [f"{a.channel}:{a.external_id} — {a.role}" for a in admins] or ["No admins."]
    return CommandResult(
        "\n".join(lines),
        data=[{"identity": f"{a.channel}:{a.external_id}", "role": a.role} for a in admins],
    )
