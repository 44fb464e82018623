"""Packs and plans: what tenants can buy, read and changed by ``/pack`` and ``/plan``."""

from __future__ import annotations

from sqlalchemy import case, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFoundError
from storage.models import Pack, Plan
from storage.states import PLAN_KINDS, PlanKind


class PackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find(self, slug: str) -> Pack | None:
        query = select(Pack).where(Pack.slug == slug)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get(self, slug: str) -> Pack:
        pack = await self.find(slug)
        if pack is None:
            raise NotFoundError("pack", slug)
        return pack

    async def list(self, *, active_only: bool = False) -> list[Pack]:
        query = select(Pack).order_by(Pack.price_micros, Pack.slug)
        if active_only:
            query = query.where(Pack.active.is_(True))
        return list((await self.session.execute(query)).scalars())

    async def add_if_missing(self, pack: Pack) -> bool:
        """Insert unless the slug exists (also when another process inserts it meanwhile)."""
        return await _add_if_missing(self.session, pack, await self.find(pack.slug) is not None)


class PlanRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find(self, slug: str) -> Plan | None:
        query = select(Plan).where(Plan.slug == slug)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get(self, slug: str) -> Plan:
        plan = await self.find(slug)
        if plan is None:
            raise NotFoundError("plan", slug)
        return plan

    async def list(self, *, kind: PlanKind | None = None, active_only: bool = False) -> list[Plan]:
        kind_order = case({k: i for i, k in enumerate(PLAN_KINDS)}, value=Plan.kind, else_=9)
        query = select(Plan).order_by(kind_order, Plan.price_micros, Plan.slug)
        if kind is not None:
            query = query.where(Plan.kind == kind)
        if active_only:
            query = query.where(Plan.active.is_(True))
        return list((await self.session.execute(query)).scalars())

    async def add_if_missing(self, plan: Plan) -> bool:
        return await _add_if_missing(self.session, plan, await self.find(plan.slug) is not None)


async def _add_if_missing(session: AsyncSession, row: Pack | Plan, exists: bool) -> bool:
    if exists:
        return False
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:  # a process starting at the same time seeded it first
        return False
    return True
