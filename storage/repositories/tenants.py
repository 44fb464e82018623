from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import ConflictError, NotFoundError
from core.i18n import lazy
from storage.models import ChannelBinding, Invite, Member, Tenant
from storage.states import TenantStatus

INVITE_TTL = timedelta(days=7)
#: Activity timestamps are refreshed at most this often (saves a write on every message).
ACTIVITY_RESOLUTION = timedelta(minutes=1)
PLANS = ("prepaid", "postpaid")


def hash_invite_code(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self,
        *,
        slug: str,
        name: str,
        email: str | None,
        currency: str,
        vat_rate_ppm: int,
        trial_ends_at: datetime | None,
        plan: str = "prepaid",
    ) -> Tenant:
        if await self.find(slug) is not None:
            raise ConflictError(
                f"tenant {slug} exists", user_message=lazy("Tenant '{slug}' exists.", slug=slug)
            )
        tenant = Tenant(
            slug=slug,
            name=name,
            email=email,
            status="trial",
            plan=plan,
            billing_currency=currency,
            vat_rate_ppm=vat_rate_ppm,
            trial_ends_at=trial_ends_at,
            token_balance=0,
            tokens_reserved=0,
        )
        self.session.add(tenant)
        await self.session.flush()
        return tenant

    async def find(self, slug: str) -> Tenant | None:
        result = await self.session.execute(select(Tenant).where(Tenant.slug == slug))
        return result.scalar_one_or_none()

    async def get(self, slug: str) -> Tenant:
        tenant = await self.find(slug)
        if tenant is None:
            raise NotFoundError("tenant", slug)
        return tenant

    async def by_id(self, tenant_id: int) -> Tenant:
        tenant = await self.session.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFoundError("tenant", str(tenant_id))
        return tenant

    async def by_ids(self, tenant_ids: set[int]) -> dict[int, Tenant]:
        wanted = sorted(tenant_ids)
        found: dict[int, Tenant] = {}
        for start in range(0, len(wanted), 500):
            query = select(Tenant).where(Tenant.id.in_(wanted[start : start + 500]))
            found.update({t.id: t for t in (await self.session.execute(query)).scalars()})
        return found

    async def refresh(self, tenant: Tenant) -> Tenant:
        await self.session.refresh(tenant)
        return tenant

    async def list(self, status: TenantStatus | None = None) -> list[Tenant]:
        query = select(Tenant).order_by(Tenant.slug)
        if status:
            query = query.where(Tenant.status == status)
        return list((await self.session.execute(query)).scalars())

    def touch(self, tenant: Tenant, at: datetime) -> None:
        """Record activity, at most once per :data:`ACTIVITY_RESOLUTION`."""
        if needs_touch(tenant, at):
            tenant.last_activity_at = at

    async def count(self) -> int:
        return int((await self.session.execute(select(func.count(Tenant.id)))).scalar_one())


class InviteRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, tenant: Tenant, *, now: datetime, created_by: str) -> str:
        """A fresh single-use code (128 bits of randomness); only its hash is stored."""
        code = secrets.token_urlsafe(16)
        while code.startswith("-"):  # "/start -abc" would parse as an option, not a code
            code = secrets.token_urlsafe(16)
        self.session.add(
            Invite(
                tenant_id=tenant.id,
                code_hash=hash_invite_code(code),
                created_by=created_by,
                created_at=now,
                expires_at=now + INVITE_TTL,
            )
        )
        await self.session.flush()
        return code

    async def lookup(self, code: str) -> Invite:
        """The invite ``code`` names, used or not; a ConflictError if it names none."""
        invite = (
            await self.session.execute(
                select(Invite).where(Invite.code_hash == hash_invite_code(code))
            )
        ).scalar_one_or_none()
        if invite is None:
            raise ConflictError(
                "unknown invite", user_message=lazy("This invite code is not valid.")
            )
        return invite

    async def redeem(self, code: str, *, now: datetime, used_by: str) -> Tenant:
        """Mark the code used (atomically: two redeemers cannot both win) and return its tenant."""
        invite = await self.lookup(code)
        if invite.used_at is not None:
            raise ConflictError(
                "used invite", user_message=lazy("This invite code was already used.")
            )
        if invite.expires_at <= now:
            raise ConflictError(
                "expired invite",
                user_message=lazy(
                    "This invite code has expired. Ask your administrator for a new one."
                ),
            )
        claimed = await self.session.execute(
            update(Invite)
            .where(Invite.id == invite.id, Invite.used_at.is_(None))
            .values(used_at=now, used_by=used_by)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise ConflictError(
                "used invite", user_message=lazy("This invite code was already used.")
            )
        return await TenantRepository(self.session).by_id(invite.tenant_id)


class BindingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def tenant_for(self, channel: str, scope_key: str) -> Tenant | None:
        result = await self.session.execute(
            select(Tenant)
            .join(ChannelBinding, ChannelBinding.tenant_id == Tenant.id)
            .where(ChannelBinding.channel == channel, ChannelBinding.scope_key == scope_key)
        )
        return result.scalar_one_or_none()

    async def of_tenant(self, tenant_id: int) -> list[ChannelBinding]:
        query = select(ChannelBinding).where(ChannelBinding.tenant_id == tenant_id)
        return list((await self.session.execute(query.order_by(ChannelBinding.id))).scalars())

    async def bind(
        self,
        tenant: Tenant,
        channel: str,
        scope_key: str,
        address: Mapping[str, str | bool] | None = None,
    ) -> None:
        """Bind the scope to ``tenant``, moving it if bound elsewhere: whether it may be moved
        is the caller's decision (``/start`` asks for a platform role). ``address`` is the chat
        it is bound from (``ChatAddress.to_json()``): where the tenant's invoices go."""
        existing = (
            await self.session.execute(
                select(ChannelBinding).where(
                    ChannelBinding.channel == channel, ChannelBinding.scope_key == scope_key
                )
            )
        ).scalar_one_or_none()
        stored = dict(address) if address is not None else None
        if existing is not None:
            existing.tenant_id = tenant.id
            existing.address = stored or existing.address
        else:
            self.session.add(
                ChannelBinding(
                    tenant_id=tenant.id, channel=channel, scope_key=scope_key, address=stored
                )
            )
        await self.session.flush()

    async def unlink(self, tenant_id: int, channel: str, scope_key: str) -> ChannelBinding | None:
        """Remove the tenant's binding of that chat; the removed binding, or None if it had
        none (``/tenant unlink``)."""
        binding = (
            await self.session.execute(
                select(ChannelBinding).where(
                    ChannelBinding.tenant_id == tenant_id,
                    ChannelBinding.channel == channel,
                    ChannelBinding.scope_key == scope_key,
                )
            )
        ).scalar_one_or_none()
        if binding is not None:
            await self.session.delete(binding)
            await self.session.flush()
        return binding


class MemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def of_tenant(self, tenant_id: int, *, channel: str) -> list[Member]:
        query = select(Member).where(Member.tenant_id == tenant_id, Member.channel == channel)
        return list((await self.session.execute(query.order_by(Member.id))).scalars())

    async def all_of_tenant(self, tenant_id: int) -> list[Member]:
        """Every member of the tenant on every channel, most recently seen first."""
        query = select(Member).where(Member.tenant_id == tenant_id)
        order = (Member.last_seen_at.is_(None), Member.last_seen_at.desc(), Member.id)
        return list((await self.session.execute(query.order_by(*order))).scalars())

    async def find(self, tenant_id: int, channel: str, external_id: str) -> Member | None:
        query = select(Member).where(
            Member.tenant_id == tenant_id,
            Member.channel == channel,
            Member.external_id == external_id,
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get_or_create(
        self,
        tenant_id: int,
        channel: str,
        external_id: str,
        display_name: str | None,
        now: datetime,
    ) -> Member:
        member = await self.find(tenant_id, channel, external_id)
        if member is None:
            member = Member(
                tenant_id=tenant_id,
                channel=channel,
                external_id=external_id,
                display_name=display_name,
                last_seen_at=now,
            )
            self.session.add(member)
            await self.session.flush()
        else:
            if _stale(member.last_seen_at, now):
                member.last_seen_at = now
            if display_name and display_name != member.display_name:
                member.display_name = display_name
        return member


def needs_touch(tenant: Tenant, at: datetime) -> bool:
    """Whether :meth:`TenantRepository.touch` would write."""
    return _stale(tenant.last_activity_at, at)


def member_needs_update(member: Member, display_name: str | None, at: datetime) -> bool:
    """Whether :meth:`MemberRepository.get_or_create` would write to this existing member."""
    return _stale(member.last_seen_at, at) or bool(
        display_name and display_name != member.display_name
    )


def _stale(last: datetime | None, at: datetime) -> bool:
    return last is None or at - last > ACTIVITY_RESOLUTION
