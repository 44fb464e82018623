from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditLog, PlatformAdmin, Tenant, utcnow

ROLES = ("viewer", "editor", "admin", "super_admin")


class AdminRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def role_of(self, channel: str, external_id: str) -> str | None:
        result = await self.session.execute(
            select(PlatformAdmin.role).where(
                PlatformAdmin.channel == channel, PlatformAdmin.external_id == external_id
            )
        )
        return result.scalar_one_or_none()

    async def upsert(
        self, channel: str, external_id: str, role: str, created_by: str
    ) -> str | None:
        """Set the role; returns the previous role (None if new)."""
        existing = (
            await self.session.execute(
                select(PlatformAdmin).where(
                    PlatformAdmin.channel == channel, PlatformAdmin.external_id == external_id
                )
            )
        ).scalar_one_or_none()
        if existing is None:
            self.session.add(
                PlatformAdmin(
                    channel=channel, external_id=external_id, role=role, created_by=created_by
                )
            )
            await self.session.flush()
            return None
        previous = existing.role
        existing.role = role
        return previous

    async def remove(self, channel: str, external_id: str) -> bool:
        result = await self.session.execute(
            delete(PlatformAdmin).where(
                PlatformAdmin.channel == channel, PlatformAdmin.external_id == external_id
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def list(self) -> list[PlatformAdmin]:
        query = select(PlatformAdmin).order_by(PlatformAdmin.channel, PlatformAdmin.external_id)
        return list((await self.session.execute(query)).scalars())


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(
        self,
        actor: str,
        action: str,
        target: str | None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        tenant_id: int | None = None,
    ) -> None:
        self.session.add(
            AuditLog(
                actor=actor,
                action=action,
                target=target,
                before=before,
                after=after,
                tenant_id=tenant_id,
                created_at=utcnow(),
            )
        )
        await self.session.flush()

    async def recent(
        self, limit: int = 50, *, tenant_id: int | None = None, actor: str | None = None
    ) -> list[tuple[AuditLog, str | None]]:
        """The latest entries first, each with its tenant's slug; optionally only those about
        one tenant, or by one actor (``telegram:12345``)."""
        query = (
            select(AuditLog, Tenant.slug)
            .outerjoin(Tenant, Tenant.id == AuditLog.tenant_id)
            .order_by(AuditLog.id.desc())
            .limit(limit)
        )
        if tenant_id is not None:
            query = query.where(AuditLog.tenant_id == tenant_id)
        if actor is not None:
            query = query.where(AuditLog.actor == actor)
        return [(entry, slug) for entry, slug in (await self.session.execute(query)).all()]
