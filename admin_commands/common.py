"""Helpers shared by command modules."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from admin_commands.registry import Caller, CommandContext
from admin_commands.roles import minimum_role
from core.envelope import ChatAddress
from core.errors import PermissionDenied
from core.i18n import lazy
from core.money import from_micros
from storage.models import Tenant
from storage.repositories.admins import AuditRepository
from storage.repositories.tenants import TenantRepository


async def target_tenant(
    ctx: CommandContext, session: AsyncSession, *, permission: str = "stats.read"
) -> Tenant:
    """``--tenant SLUG`` for admins (the shell has no chat), else the caller's own tenant.

    Reaching into any tenant with ``--tenant`` takes a platform ``permission``: reading needs
    ``stats.read``; a command that changes the tenant's data passes a write permission.
    """
    slug: str | None = getattr(ctx.args, "tenant", None)
    if slug:
        if not ctx.caller.can(permission):
            raise PermissionDenied(minimum_role(permission), f"/{ctx.command.name} --tenant")
        return await TenantRepository(session).get(slug)
    if ctx.caller.tenant is None:
        raise ctx.usage_error(lazy("No tenant here: pass --tenant SLUG."))
    return await TenantRepository(session).by_id(ctx.caller.tenant.id)


async def audit(
    session: AsyncSession,
    ctx: CommandContext,
    action: str,
    target: str | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    *,
    tenant: Tenant | None = None,
) -> None:
    """One audit entry; ``tenant`` is the tenant concerned, so ``/audit SLUG`` finds it."""
    await AuditRepository(session).record(
        ctx.caller.actor,
        action,
        target,
        before,
        after,
        tenant_id=tenant.id if tenant is not None else None,
    )


def money_str(micros: int) -> str:
    return str(from_micros(micros).normalize() if micros else Decimal("0"))


def tenant_summary(tenant: Tenant) -> dict[str, Any]:
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "email": tenant.email,
        "status": tenant.status,
        "plan": tenant.plan,
        "token_balance": tenant.token_balance,
        "tokens_reserved": tenant.tokens_reserved,
        "monthly_token_quota": tenant.monthly_token_quota,
        "trial_ends_at": tenant.trial_ends_at.isoformat() if tenant.trial_ends_at else None,
        "billing_currency": tenant.billing_currency,
        "vat_rate": str(Decimal(tenant.vat_rate_ppm) / 1_000_000),
        "address": tenant.address,
        "country": tenant.country,
        "vat_id": tenant.vat_id,
        "language": tenant.language,
        "created_at": tenant.created_at.isoformat(),
        "last_activity_at": tenant.last_activity_at.isoformat()
        if tenant.last_activity_at
        else None,
    }


def reply_address(caller: Caller) -> ChatAddress | None:
    """The caller's chat, to be told when a payment lands; None from the shell."""
    if caller.in_shell:  # there is no chat to write back to
        return None
    return ChatAddress(
        channel=caller.channel,
        chat_key=caller.chat_key,
        user_id=caller.user_id,
        thread_key=caller.thread_key,
        is_private=caller.is_private,
    )
