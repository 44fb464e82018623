from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn, cast

from sqlalchemy import BindParameter, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import ConflictError, NotFoundError
from core.i18n import Number, lazy
from core.limits import MAX_BALANCE
from storage.models import LedgerEntry, Tenant
from storage.rows import insert_row, refresh_loaded
from storage.states import LEDGER_KINDS, LedgerKind


@dataclass(frozen=True, slots=True)
class LedgerMismatch:
    slug: str
    balance: int
    ledger_sum: int


_TENANTS = cast(Table, Tenant.__table__)
_RESULTING = _TENANTS.c.token_balance + bindparam("tokens")
#: The balance change, built once (every answered turn posts one): the bounds are part of the
#: condition, so they hold however many processes post at once.
_POST = (
    update(_TENANTS)
    .where(_TENANTS.c.id == bindparam("tenant"), _RESULTING.between(-MAX_BALANCE, MAX_BALANCE))
    .values(
        token_balance=_RESULTING,
        tokens_reserved=_TENANTS.c.tokens_reserved - bindparam("release"),
    )
    .returning(_TENANTS.c.token_balance, _TENANTS.c.tokens_reserved)
)
_FLOOR: BindParameter[int] = bindparam("floor")
_POST_ABOVE_FLOOR = _POST.where(_RESULTING >= _FLOOR)


class LedgerRepository:
    """The only writer of ``tenants.token_balance``: each change is an entry in the same
    transaction, so balance == SUM(entries) holds at every commit."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def post(
        self,
        tenant_id: int,
        kind: LedgerKind,
        tokens: int,
        *,
        now: datetime,
        reference: str | None = None,
        note: str = "",
        actor: str | None = None,
        release_reserved: int = 0,
        floor: int | None = None,
    ) -> LedgerEntry:
        """Change the balance by ``tokens`` (and optionally release a reservation) atomically.

        A balance that would leave ±:data:`~core.limits.MAX_BALANCE` is refused with a
        :class:`ConflictError` and nothing is written: the bound is part of the ``UPDATE``'s
        condition, so it holds however many processes post at once. ``floor`` is a lower bound
        kept the same way (``/tokens adjust`` keeps a prepaid balance at or above 0).
        """
        if kind not in LEDGER_KINDS:
            raise ValueError(f"unknown ledger kind {kind!r}")
        if abs(tokens) > 2 * MAX_BALANCE:
            # Out of range whatever the balance is; checked here because the database would
            # overflow computing the sum (an error on PostgreSQL, a float on SQLite).
            await self._refuse(tenant_id, tokens)
        statement = _POST if floor is None else _POST_ABOVE_FLOOR
        params = {"tenant": tenant_id, "tokens": tokens, "release": release_reserved}
        if floor is not None:
            params["floor"] = floor
        row = (await self.session.execute(statement, params)).one_or_none()
        if row is None:
            await self._refuse(tenant_id, tokens, floor)
        balance, reserved = row
        refresh_loaded(
            self.session, Tenant, tenant_id, token_balance=balance, tokens_reserved=reserved
        )
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
        await insert_row(self.session, entry)
        return entry

    async def _refuse(self, tenant_id: int, tokens: int, floor: int | None = None) -> NoReturn:
        """Why the update matched no row: no such tenant, or a balance beyond a bound."""
        balance = (
            await self.session.execute(select(Tenant.token_balance).where(Tenant.id == tenant_id))
        ).scalar_one_or_none()
        if balance is None:
            raise NotFoundError("tenant", str(tenant_id))
        if floor is not None and abs(tokens) <= 2 * MAX_BALANCE and balance + tokens < floor:
            raise ConflictError(
                f"tenant {tenant_id}: balance {balance} + {tokens} below {floor}",
                user_message=lazy(
                    "Refused: that would take the token balance from {before} to {after}, "
                    "below {floor}. Nothing was changed.",
                    before=Number(int(balance)),
                    after=Number(int(balance) + tokens),
                    floor=Number(floor),
                ),
            )
        raise ConflictError(
            f"tenant {tenant_id}: balance {balance} + {tokens} leaves ±{MAX_BALANCE}",
            user_message=lazy(
                "Refused: that would take the token balance from {before} to {after}, "
                "beyond the limit of ±{limit}. Nothing was changed.",
                before=Number(int(balance)),
                after=Number(int(balance) + tokens),
                limit=Number(MAX_BALANCE),
            ),
        )

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
