from __future__ import annotations

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFoundError
from storage.models import ContentItem, Tenant

CONTENT_KINDS = ("text", "image", "audio", "video", "document")


class LibraryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, item: ContentItem) -> ContentItem:
        """Save ``item`` under the tenant's next number.

        The number comes from one ``UPDATE ... RETURNING`` on the tenant's counter: the row lock
        orders concurrent turns of one tenant, across processes, with no gap and no duplicate.
        """
        if item.kind not in CONTENT_KINDS:
            raise ValueError(f"unknown content kind {item.kind!r}")
        item.number = (
            await self.session.execute(
                update(Tenant)
                .where(Tenant.id == item.tenant_id)
                .values(library_seq=Tenant.library_seq + 1)
                .returning(Tenant.library_seq)
            )
        ).scalar_one()
        self.session.add(item)
        await self.session.flush()
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
