"""Platform admins: ``/admin add|remove|list``."""

from __future__ import annotations

from admin_commands.common import audit
from admin_commands.language import translator
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.roles import ROLES
from admin_commands.values import identity
from core.i18n import lazy
from storage.repositories.admins import AdminRepository

commands = CommandGroup()


@commands.command(
    "admin add",
    permission="admins.write",
    arguments=[Arg("identity", type=identity), Arg("role", choices=ROLES)],
)
async def add(ctx: CommandContext) -> CommandResult:
    """Grant a platform role to a chat identity."""
    channel, ident = ctx.args.identity
    async with ctx.deps.sessions.begin() as session:
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
    # Roles are named as they are typed (viewer, editor, admin, super_admin).
    t = translator(ctx)
    who = f"{channel}:{ident}"
    return CommandResult(
        t("{identity} is now {role}.", identity=who, role=ctx.args.role),
        data={"identity": f"{channel}:{ident}", "role": ctx.args.role, "previous": previous},
    )


@commands.command(
    "admin remove", permission="admins.write", arguments=[Arg("identity", type=identity)]
)
async def remove(ctx: CommandContext) -> CommandResult:
    """Revoke a platform role."""
    channel, ident = ctx.args.identity
    if ctx.caller.channel == channel and ctx.caller.user_id == ident:
        raise ctx.usage_error(lazy("You cannot remove yourself."))
    async with ctx.deps.sessions.begin() as session:
        repo = AdminRepository(session)
        previous = await repo.role_of(channel, ident)
        removed = await repo.remove(channel, ident)
        if removed:
            await audit(
                session, ctx, "admin.remove", f"{channel}:{ident}", {"role": previous}, None
            )
    t = translator(ctx)
    who = f"{channel}:{ident}"
    text = (
        t("Removed {identity}.", identity=who)
        if removed
        else t("{identity} was not an admin.", identity=who)
    )
    return CommandResult(text, data={"identity": f"{channel}:{ident}", "removed": removed})


@commands.command("admin list", permission="admins.write")
async def list_(ctx: CommandContext) -> CommandResult:
    """List platform admins and their roles."""
    t = translator(ctx)
    async with ctx.deps.sessions() as session:
        admins = await AdminRepository(session).list()
    lines = [f"{a.channel}:{a.external_id} — {a.role}" for a in admins] or [t("No admins.")]
    return CommandResult(
        "\n".join(lines),
        data=[{"identity": f"{a.channel}:{a.external_id}", "role": a.role} for a in admins],
    )
