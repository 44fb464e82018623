"""A process's cache of who is who: platform admin roles, chat bindings, tenants and members,
and the assistants each tenant may use.

Valid for one value of ``config_version.version`` (migration 0019: triggers bump it with every
committed change to what is cached, whichever process or command makes it). Each turn reads the
version in its claim's transaction, in the same statement as the balance of the tenant it
expects (:func:`read_freshness`), and hands it to :meth:`ConfigCache.identify`: a version newer
than the cache's empties the cache, so a change is seen by every process on its next turn. The
balance is not configuration (every turn changes it) and comes from that same read.

Entries are plain column values; each turn gets its own detached ORM objects built from them,
so nothing a turn or a command does to its ``Tenant``, ``Member`` or ``Assistant`` leaks into
another turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from storage.db import Sessions
from storage.models import Assistant, Base, ConfigVersion, Member, Tenant
from storage.repositories.admins import AdminRepository
from storage.repositories.assistants import AssistantRepository, ResolvedAssistant
from storage.repositories.tenants import BindingRepository, MemberRepository

_FRESHNESS = (
    select(ConfigVersion.version, Tenant.id, Tenant.token_balance, Tenant.tokens_reserved)
    .select_from(ConfigVersion)
    .outerjoin(Tenant, Tenant.id == bindparam("tenant_id"))
    .where(ConfigVersion.id == 1)
)


@dataclass(frozen=True, slots=True)
class Freshness:
    """What one turn read of the database's present: the configuration version and, for the
    tenant it expected (None if it had no guess), the balance."""

    version: int
    tenant_id: int | None = None
    token_balance: int = 0
    tokens_reserved: int = 0


async def read_freshness(session: AsyncSession, tenant_id: int | None) -> Freshness:
    """One indexed read: the configuration version and ``tenant_id``'s balance."""
    row = (await session.execute(_FRESHNESS, {"tenant_id": tenant_id})).one()
    version, found, balance, reserved = row
    if found is None:
        return Freshness(int(version))
    return Freshness(int(version), int(found), int(balance), int(reserved))


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sent a message, as the turn uses it (each turn gets objects of its own)."""

    admin_role: str | None
    tenant: Tenant | None
    member: Member | None


_Row = dict[str, Any]
_UNKNOWN = object()
_T = TypeVar("_T", bound=Base)


class ConfigCache:
    def __init__(self) -> None:
        self._version = -1
        #: Bumped whenever entries are dropped: a load begun before may not store what it read.
        self._generation = 0
        self._roles: dict[tuple[str, str], str | None] = {}
        self._bindings: dict[tuple[str, str], int | None] = {}
        self._tenants: dict[int, _Row] = {}
        self._members: dict[tuple[int, str, str], _Row] = {}
        #: Per tenant: (assistant row, display name, system prompt) of each it may use.
        self._assistants: dict[int, list[tuple[_Row, str, str]]] = {}

    @property
    def version(self) -> int:
        return self._version

    def expected_tenant(self, channel: str, scope_key: str) -> int | None:
        """The tenant the scope was bound to when last seen (a guess until the version is read)."""
        return self._bindings.get((channel, scope_key))

    def clear(self) -> None:
        self._generation += 1
        self._roles.clear()
        self._bindings.clear()
        self._tenants.clear()
        self._members.clear()
        self._assistants.clear()

    def _sync(self, version: int) -> None:
        # Older versions come from turns that read before a newer one arrived: the cache is at
        # least as fresh as they need.
        if version > self._version:
            self.clear()
            self._version = version

    async def identify(
        self,
        sessions: Sessions,
        fresh: Freshness,
        *,
        channel: str,
        scope_key: str,
        user_id: str,
    ) -> Identity:
        """The sender's platform role, tenant and member, loading what is not cached in one
        read transaction; a cached tenant carries ``fresh``'s balance."""
        self._sync(fresh.version)
        role: Any = self._roles.get((channel, user_id), _UNKNOWN)
        tenant_id: Any = self._bindings.get((channel, scope_key), _UNKNOWN)
        tenant_row = self._tenants.get(tenant_id) if isinstance(tenant_id, int) else None
        member_row = (
            self._members.get((tenant_id, channel, user_id)) if isinstance(tenant_id, int) else None
        )
        stale_balance = tenant_row is not None and fresh.tenant_id != tenant_id
        if (
            role is _UNKNOWN
            or tenant_id is _UNKNOWN
            or (tenant_id is not None and (tenant_row is None or stale_balance))
            or (tenant_id is not None and member_row is None)
        ):
            generation = self._generation
            async with sessions.quick() as session:  # short indexed reads: on the loop
                role = await AdminRepository(session).role_of(channel, user_id)
                tenant = await BindingRepository(session).tenant_for(channel, scope_key)
                member = (
                    await MemberRepository(session).find(tenant.id, channel, user_id)
                    if tenant is not None
                    else None
                )
            if generation == self._generation:
                self._roles[(channel, user_id)] = role
                self.remember(channel, scope_key, tenant, member)
            # Loaded just now (the balance too), and this turn's own objects.
            return Identity(role, tenant, member)
        tenant = _build(Tenant, tenant_row) if tenant_row is not None else None
        if tenant is not None:
            tenant.token_balance = fresh.token_balance
            tenant.tokens_reserved = fresh.tokens_reserved
        member = _build(Member, member_row) if member_row is not None else None
        return Identity(role, tenant, member)

    async def assistants(
        self, session: AsyncSession, version: int, tenant_id: int
    ) -> list[ResolvedAssistant]:
        """The assistants ``tenant_id`` may use (``AssistantRepository.available_to``), read in
        ``session`` unless cached for ``version`` (a version the turn read before this)."""
        self._sync(version)
        cached = self._assistants.get(tenant_id)
        if cached is not None:
            return [
                ResolvedAssistant(_build(Assistant, row), name, prompt)
                for row, name, prompt in cached
            ]
        generation = self._generation
        resolved = await AssistantRepository(session).available_to(tenant_id)
        # Read after ``version`` was: at least as fresh as the version it is stored under.
        if generation == self._generation:
            self._assistants[tenant_id] = [
                (_row(r.assistant), r.display_name, r.system_prompt) for r in resolved
            ]
        return resolved

    def remember(
        self, channel: str, scope_key: str, tenant: Tenant | None, member: Member | None
    ) -> None:
        """Store what a turn loaded or wrote (the tenant bound to the scope, and the member).

        Callers store only what they read at or after the version the cache holds."""
        self._bindings[(channel, scope_key)] = tenant.id if tenant is not None else None
        if tenant is not None:
            self._tenants[tenant.id] = _row(tenant)
        if member is not None:
            self._members[(member.tenant_id, member.channel, member.external_id)] = _row(member)

    @property
    def generation(self) -> int:
        return self._generation


def _row(obj: Base) -> _Row:
    return {c.key: getattr(obj, c.key) for c in obj.__mapper__.column_attrs}


def _build(cls: type[_T], row: _Row) -> _T:
    """A detached object with the row's values, as if loaded by a session now closed."""
    # Lists and dicts (JSON columns) are copied: a turn changing its own must not change ours.
    obj = cls(**{k: v.copy() if isinstance(v, list | dict) else v for k, v in row.items()})
    make_transient_to_detached(obj)
    return obj
