"""The outbox table: messages written in their cause's transaction, delivered after commit.

A row moves ``pending`` → ``sending`` → ``sent``; a failed attempt puts it back to ``pending``
with a later ``next_attempt_at``; one that has been trying for too long becomes ``failed``.
Claiming is one conditional UPDATE (``pending`` and due, or ``sending`` with its lease run out),
so two processes never both hold a row; only the holder of the lease may settle it.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, get_args

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.envelope import ChatAddress, LinkButton, OutboundFile
from storage.models import OutboxMessage

#: ``pending`` (waiting for its next attempt), ``sending`` (leased by a process), ``sent``,
#: ``failed`` (given up).
OutboxStatus = Literal["pending", "sending", "sent", "failed"]
OUTBOX_STATUSES: tuple[OutboxStatus, ...] = get_args(OutboxStatus)
#: Where under ``MEDIA_DIR`` the outbox keeps the files of its messages.
FILES_DIR = "outbox"


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A row to write: one message to one recipient."""

    address: ChatAddress
    text: str
    delivery_key: str
    cause_kind: str
    cause_ref: str = ""
    buttons: tuple[LinkButton, ...] = ()
    files: tuple[OutboundFile, ...] = ()
    tenant_id: int | None = None


def address_of(row: OutboxMessage) -> ChatAddress:
    return ChatAddress(
        row.channel,
        row.chat_key,
        user_id=row.user_id,
        thread_key=row.thread_key,
        is_private=row.is_private,
    )


def buttons_of(row: OutboxMessage) -> tuple[LinkButton, ...]:
    return tuple(LinkButton(b["label"], b["url"]) for b in row.buttons)


def files_of(row: OutboxMessage, media_dir: Path) -> tuple[OutboundFile, ...]:
    """The row's files, read from disk when sent (``path``), not held in memory."""
    return tuple(
        OutboundFile(
            f["name"], b"", f["mime"], caption=f.get("caption", ""), path=media_dir / f["path"]
        )
        for f in row.files
    )


def save_files(media_dir: Path, files: Sequence[OutboundFile]) -> list[dict[str, str]]:
    """Write ``files`` under ``MEDIA_DIR/outbox/<random>/`` and describe them for a row.

    Written before the row's transaction commits: a rollback leaves an unreferenced file,
    never a row without its file."""
    if not files:
        return []
    folder = Path(FILES_DIR) / uuid.uuid4().hex
    (media_dir / folder).mkdir(parents=True, exist_ok=True)
    stored: list[dict[str, str]] = []
    for n, file in enumerate(files):
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", file.file_name).strip("._") or f"file{n}"
        relative = folder / f"{n}-{name}"
        if file.path is not None:
            shutil.copyfile(file.path, media_dir / relative)
        else:
            (media_dir / relative).write_bytes(file.data)
        stored.append(
            {
                "path": relative.as_posix(),
                "name": file.file_name,
                "mime": file.mime_type,
                "caption": file.caption,
            }
        )
    return stored


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, message: NewMessage, *, now: datetime, media_dir: Path | None = None
    ) -> int | None:
        """Write ``message`` unless its delivery key is there already; its id, or None for a
        message that cause wrote before (at most once per recipient and cause)."""
        found = await self.session.execute(
            select(OutboxMessage.id).where(OutboxMessage.delivery_key == message.delivery_key)
        )
        if found.scalar_one_or_none() is not None:
            return None
        if message.files and media_dir is None:
            raise ValueError("a message with files needs MEDIA_DIR")
        address = message.address
        row = OutboxMessage(
            channel=address.channel,
            chat_key=address.chat_key,
            thread_key=address.thread_key,
            user_id=address.user_id,
            is_private=address.is_private,
            text=message.text,
            buttons=[{"label": b.label, "url": b.url} for b in message.buttons],
            files=save_files(media_dir, message.files) if media_dir is not None else [],
            delivery_key=message.delivery_key,
            cause_kind=message.cause_kind,
            cause_ref=message.cause_ref,
            tenant_id=message.tenant_id,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        try:
            async with self.session.begin_nested():
                self.session.add(row)
                await self.session.flush()
        except IntegrityError:  # the same cause, written at the same moment by another process
            return None
        return row.id

    async def get(self, message_id: int) -> OutboxMessage | None:
        return await self.session.get(OutboxMessage, message_id, populate_existing=True)

    async def due(
        self, now: datetime, channels: Collection[str], *, limit: int = 50
    ) -> list[OutboxMessage]:
        """Rows of ``channels`` that may be attempted now: pending and due, or left ``sending``
        by a process whose lease ran out (it crashed)."""
        if not channels:
            return []
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.channel.in_(sorted(channels)), _claimable(now))
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
        return list((await self.session.execute(query)).scalars())

    async def claim(self, message_id: int, owner: str, now: datetime, until: datetime) -> bool:
        """Take the row for one attempt (one statement: two processes cannot both win)."""
        result = await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, _claimable(now))
            .values(
                status="sending",
                lease_owner=owner,
                lease_expires_at=until,
                attempts=OutboxMessage.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def settle(
        self,
        message_id: int,
        owner: str,
        status: OutboxStatus,
        *,
        now: datetime,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
    ) -> bool:
        """Record the outcome of ``owner``'s attempt: False when the lease was no longer its
        own (it ran out and another process took the row)."""
        values: dict[str, object] = {
            "status": status,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if status == "sent":
            values["sent_at"] = now
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        if error is not None:
            values["last_error"] = error[:2000]
        result = await self.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.status == "sending",
                OutboxMessage.lease_owner == owner,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def stale(self, created_before: datetime, now: datetime) -> list[OutboxMessage]:
        """Rows still undelivered that were written at or before ``created_before`` (and are not
        being attempted right now): to be given up."""
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.created_at <= created_before, _claimable(now, due=False))
            .order_by(OutboxMessage.id)
        )
        return list((await self.session.execute(query)).scalars())

    async def give_up(self, message_id: int, now: datetime) -> bool:
        result = await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, _claimable(now, due=False))
            .values(status="failed", lease_owner=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def of_cause(self, kind: str, ref: str) -> list[OutboxMessage]:
        query = select(OutboxMessage).where(
            OutboxMessage.cause_kind == kind, OutboxMessage.cause_ref == ref
        )
        return list((await self.session.execute(query.order_by(OutboxMessage.id))).scalars())


def _claimable(now: datetime, *, due: bool = True) -> ColumnElement[bool]:
    pending: ColumnElement[bool] = OutboxMessage.status == "pending"
    if due:
        pending = and_(pending, OutboxMessage.next_attempt_at <= now)
    abandoned = and_(OutboxMessage.status == "sending", OutboxMessage.lease_expires_at <= now)
    return or_(pending, abandoned)
