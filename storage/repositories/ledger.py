from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import LedgerEntry, Tenant

LEDGER_KINDS = ("grant", "purchase", "usage", "refund", "adjustment")


@dataclass(frozen=True, slots=True)
class LedgerMismatch:
    slug: str
    balance: int
    ledger_sum: int


class LedgerRepository:
    """The only writer of ``tenants.token_balance``: each change is an entry in the same
    transaction, so balance == SUM(entries) holds at every commit."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def post(
        self,
        tenant_id: int,
        kind: str,
        tokens: int,
        *,
        now: datetime,
        reference: str | None = None,
        note: str = "",
        actor: str | None = None,
        release_reserved: int = 0,
    ) -> LedgerEntry:
        """Change the balance by ``tokens`` (and optionally release a reservation) atomically."""
        if kind not in LEDGER_KINDS:
            raise ValueError(f"unknown ledger kind {kind!r}")
        balance = (
            await self.session.execute(
                update(Tenant)
                .where(Tenant.id == tenant_id)
                .values(
                    token_balance=Tenant.token_balance + tokens,
                    tokens_reserved=Tenant.tokens_reserved - release_reserved,
                )
                .returning(Tenant.token_balance)
            )
        ).scalar_one()
        entry = LedgerEntry(
            tenant_id=tenant_id,
            kind=kind,
            tokens=tokens,
            balance_after=balance,
            reference=reference,
            note=note,
            actor=actor,
            created_at=now,
        )
        self.session.add(entry)
        await self.session.flush()
        return entry

    async def has_reference(self, reference: str) -> bool:
        query = select(LedgerEntry.id).where(LedgerEntry.reference == reference)
        return (await self.session.execute(query)).first() is not None

    async def entries(self, tenant_id: int, limit: int = 50) -> list[LedgerEntry]:
        query = (
            select(LedgerEntry)
            .where(LedgerEntry.tenant_id == tenant_id)
            .order_by(LedgerEntry.id.desc())
            .limit(limit)
        )
        return list((await self.session.execute(query)).scalars())

    async def verify(self) -> tuple[int, list[LedgerMismatch]]:
        """(tenants checked, those whose balance differs from their ledger sum)."""
        sums = (
            select(
                LedgerEntry.tenant_id, func.coalesce(func.sum(LedgerEntry.tokens), 0).label("total")
            )
            .group_by(LedgerEntry.tenant_id)
            .subquery()
        )
        rows = (
            await self.session.execute(
                select(Tenant.slug, Tenant.token_balance, func.coalesce(sums.c.total, 0))
                .outerjoin(sums, sums.c.tenant_id == Tenant.id)
                .order_by(Tenant.slug)
            )
        ).all()
        mismatches = [
            LedgerMismatch(slug, int(balance), int(total))
            for slug, balance, total in rows
            if int(balance) != int(total)
        ]
        return len(rows), mismatches
