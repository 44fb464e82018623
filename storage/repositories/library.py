from __future__ import annotations

from typing import cast

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFoundError
from storage.models import ContentItem, Tenant
from storage.rows import insert_row, refresh_loaded

CONTENT_KINDS = ("text", "image", "audio", "video", "document")

_TENANTS = cast(Table, Tenant.__table__)
#: The tenant's next library number (every answer takes one): built once.
_NEXT_NUMBER = (
    update(_TENANTS)
    .where(_TENANTS.c.id == bindparam("tenant"))
    .values(library_seq=_TENANTS.c.library_seq + 1)
    .returning(_TENANTS.c.library_seq)
)


class LibraryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, item: ContentItem) -> ContentItem:
        """Save ``item`` under the tenant's next number.

        The number comes from one ``UPDATE ... RETURNING`` on the tenant's counter: the row lock
        orders concurrent turns of one tenant, across processes, with no gap and no duplicate.
        The item is written by a Core insert (:mod:`storage.rows`): it gets its ``id`` and
        ``number`` but is not added to the session.
        """
        if item.kind not in CONTENT_KINDS:
            raise ValueError(f"unknown content kind {item.kind!r}")
        item.number = (
            await self.session.execute(_NEXT_NUMBER, {"tenant": item.tenant_id})
        ).scalar_one()
        refresh_loaded(self.session, Tenant, item.tenant_id, library_seq=item.number)
        await insert_row(self.session, item)
        return item

    async def get(self, tenant_id: int, number: int) -> ContentItem:
        """The tenant's item ``number`` (the number users see, not the row id)."""
        query = select(ContentItem).where(
            ContentItem.tenant_id == tenant_id, ContentItem.number == number
        )
        item = (await self.session.execute(query)).scalar_one_or_none()
        if item is None:
            raise NotFoundError("library item", str(number))
        return item

    async def search(
        self,
        tenant_id: int,
        *,
        kind: str | None = None,
        text: str | None = None,
        include_archived: bool = False,
        only_archived: bool = False,
        limit: int = 10,
    ) -> list[ContentItem]:
        query = select(ContentItem).where(ContentItem.tenant_id == tenant_id)
        if only_archived:
            query = query.where(ContentItem.archived.is_(True))
        elif not include_archived:
            query = query.where(ContentItem.archived.is_(False))
        if kind:
            query = query.where(ContentItem.kind == kind)
        if text:
            pattern = f"%{text.lower()}%"
            query = query.where(
                or_(
                    func.lower(ContentItem.title).like(pattern),
                    func.lower(ContentItem.text).like(pattern),
                )
            )
        query = query.order_by(ContentItem.id.desc()).limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def count(self, tenant_id: int) -> int:
        query = select(func.count(ContentItem.id)).where(ContentItem.tenant_id == tenant_id)
        return int((await self.session.execute(query)).scalar_one())
