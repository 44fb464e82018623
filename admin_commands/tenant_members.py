"""A tenant's people and chats: ``/tenant members``, ``/tenant unlink``, ``/tenant block`` and
``/tenant unblock``, so a leaked invite is answered without suspending the whole tenant."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from admin_commands.common import audit
from admin_commands.language import translator
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.values import MAX_IDENTITY_CHARS, identity, shown, slug
from core.i18n import Translator, lazy
from core.identity import CHANNELS
from storage.models import ChannelBinding, Member
from storage.repositories.admins import AdminRepository
from storage.repositories.tenants import BindingRepository, MemberRepository, TenantRepository

WRITE = "tenants.write"
commands = CommandGroup()


def chat(raw: str) -> tuple[str, str]:
    """A linked chat as ``/tenant members`` shows it: ``CHANNEL:SCOPE`` (``telegram:user:42``,
    ``telegram:chat:-100123``, ``slack:team:T0001``)."""
    channel, sep, scope = raw.strip().partition(":")
    if len(raw) > MAX_IDENTITY_CHARS or not sep or not scope or channel not in CHANNELS:
        raise argparse.ArgumentTypeError(
            lazy(
                "{value} is not a chat as /tenant members shows it: CHANNEL:SCOPE, "
                "like telegram:user:42 or slack:team:T0001",
                value=shown(raw),
            )
        )
    return channel, scope


def _when(t: Translator, at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M}" if at else t("never")


def _member_json(member: Member, role: str | None) -> dict[str, Any]:
    return {
        "member": f"{member.channel}:{member.external_id}",
        "name": member.display_name,
        "role": role or "member",
        "blocked": member.blocked_at is not None,
        "blocked_at": member.blocked_at.isoformat() if member.blocked_at else None,
        "joined_at": member.created_at.isoformat(),
        "last_activity_at": member.last_seen_at.isoformat() if member.last_seen_at else None,
    }


def _chat_json(binding: ChannelBinding) -> dict[str, Any]:
    return {
        "chat": f"{binding.channel}:{binding.scope_key}",
        "linked_at": binding.created_at.isoformat(),
    }


@commands.command("tenant members", permission="stats.read", arguments=[Arg("slug", type=slug)])
async def members(ctx: CommandContext) -> CommandResult:
    """A tenant's members (role, last activity, blocked) and linked chats."""
    async with ctx.deps.sessions() as session:
        tenant = await TenantRepository(session).get(ctx.args.slug)
        people = await MemberRepository(session).all_of_tenant(tenant.id)
        chats = await BindingRepository(session).of_tenant(tenant.id)
        admins = AdminRepository(session)
        roles = [await admins.role_of(m.channel, m.external_id) for m in people]
    rows = [_member_json(m, r) for m, r in zip(people, roles, strict=True)]
    data = {"slug": tenant.slug, "members": rows, "chats": [_chat_json(b) for b in chats]}
    t = translator(ctx)
    lines = [
        f"{tenant.name} ({tenant.slug})",
        t("Members: {count}", count=t.number(len(people))),
    ]
    for member, row in zip(people, rows, strict=True):
        name = f" ({member.display_name})" if member.display_name else ""
        blocked = " — " + t("BLOCKED") if member.blocked_at else ""
        role = t("member") if row["role"] == "member" else row["role"]  # roles are names
        seen = t("last active {when}", when=_when(t, member.last_seen_at))
        lines.append(f"  {row['member']}{name} · {role} · {seen}{blocked}")
    lines.append(t("Linked chats: {count}", count=t.number(len(chats))))
    lines += [
        f"  {b.channel}:{b.scope_key} · " + t("linked {when}", when=_when(t, b.created_at))
        for b in chats
    ]
    return CommandResult("\n".join(lines), data=data)


@commands.command(
    "tenant unlink",
    permission=WRITE,
    arguments=[Arg("slug", type=slug), Arg("chat", type=chat)],
)
async def unlink(ctx: CommandContext) -> CommandResult:
    """Unlink a chat from a tenant: its messages get the "not linked" answer again."""
    channel, scope = ctx.args.chat
    where = f"{channel}:{scope}"
    async with ctx.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(ctx.args.slug)
        removed = await BindingRepository(session).unlink(tenant.id, channel, scope)
        if removed is None:
            raise ctx.usage_error(
                lazy(
                    "{chat} is not linked to {slug}: see /tenant members {slug}.",
                    chat=where,
                    slug=tenant.slug,
                )
            )
        await audit(
            session, ctx, "tenant.unlink", f"{channel}:{scope}", _chat_json(removed), None,
            tenant=tenant,
        )  # fmt: skip
    t = translator(ctx)
    return CommandResult(
        t("Unlinked {chat} from {slug}.", chat=where, slug=tenant.slug),
        data={"slug": tenant.slug, "chat": where, "unlinked": True},
    )


async def _set_blocked(ctx: CommandContext, blocked: bool) -> CommandResult:
    channel, ident = ctx.args.member
    who = f"{channel}:{ident}"
    async with ctx.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(ctx.args.slug)
        member = await MemberRepository(session).find(tenant.id, channel, ident)
        if member is None:
            raise ctx.usage_error(
                lazy(
                    "{member} is not a member of {slug}: see /tenant members {slug}.",
                    member=who,
                    slug=tenant.slug,
                )
            )
        was = member.blocked_at is not None
        if was != blocked:
            member.blocked_at = ctx.deps.clock() if blocked else None
            await audit(
                session, ctx, "tenant.block" if blocked else "tenant.unblock", who,
                {"blocked": was}, {"blocked": blocked}, tenant=tenant,
            )  # fmt: skip
    t = translator(ctx)
    if was == blocked:
        text = (
            t("{member} was already blocked in {slug}.", member=who, slug=tenant.slug)
            if blocked
            else t("{member} was already not blocked in {slug}.", member=who, slug=tenant.slug)
        )
    else:
        text = (
            t("Blocked {member} in {slug}.", member=who, slug=tenant.slug)
            if blocked
            else t("Unblocked {member} in {slug}.", member=who, slug=tenant.slug)
        )
    return CommandResult(
        text,
        data={"slug": tenant.slug, "member": who, "blocked": blocked, "changed": was != blocked},
    )


@commands.command(
    "tenant block",
    permission=WRITE,
    arguments=[Arg("slug", type=slug), Arg("member", type=identity, metavar="MEMBER")],
)
async def block(ctx: CommandContext) -> CommandResult:
    """Block a member (CHANNEL:ID): their messages are refused, with no assistant call."""
    return await _set_blocked(ctx, True)


@commands.command(
    "tenant unblock",
    permission=WRITE,
    arguments=[Arg("slug", type=slug), Arg("member", type=identity, metavar="MEMBER")],
)
async def unblock(ctx: CommandContext) -> CommandResult:
    """Let a blocked member talk again."""
    return await _set_blocked(ctx, False)
