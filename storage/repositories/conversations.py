from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ChatPreference, Conversation, Message
from storage.rows import insert_row

# The reads every turn makes to plan its call, built once with bound parameters: building them
# anew cost more than running them.
_ACTIVE = (
    select(Conversation)
    .where(
        Conversation.tenant_id == bindparam("tenant"),
        Conversation.channel == bindparam("channel"),
        Conversation.chat_key == bindparam("chat"),
        Conversation.thread_key == bindparam("thread"),
        Conversation.closed_at.is_(None),
    )
    .order_by(Conversation.id.desc())
    .limit(1)
)
_RECENT = (
    select(Message.role, Message.content)
    .where(Message.conversation_id == bindparam("conversation"))
    .order_by(Message.id.desc())
    .limit(bindparam("limit"))
)
_PREFERRED = select(ChatPreference.assistant_id).where(
    ChatPreference.tenant_id == bindparam("tenant"),
    ChatPreference.channel == bindparam("channel"),
    ChatPreference.chat_key == bindparam("chat"),
)


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def active(
        self, tenant_id: int, channel: str, chat_key: str, thread_key: str
    ) -> Conversation | None:
        chat = {"tenant": tenant_id, "channel": channel, "chat": chat_key, "thread": thread_key}
        return (await self.session.execute(_ACTIVE, chat)).scalar_one_or_none()

    async def start(
        self,
        tenant_id: int,
        channel: str,
        chat_key: str,
        thread_key: str,
        assistant_id: int,
        now: datetime,
        *,
        close_previous: bool = True,
    ) -> Conversation:
        if close_previous:
            await self.close(tenant_id, channel, chat_key, thread_key, now)
        conversation = Conversation(
            tenant_id=tenant_id,
            channel=channel,
            chat_key=chat_key,
            thread_key=thread_key,
            assistant_id=assistant_id,
            started_at=now,
        )
        self.session.add(conversation)
        await self.session.flush()
        return conversation

    async def close(
        self, tenant_id: int, channel: str, chat_key: str, thread_key: str, now: datetime
    ) -> int:
        result = await self.session.execute(
            update(Conversation)
            .where(
                Conversation.tenant_id == tenant_id,
                Conversation.channel == channel,
                Conversation.chat_key == chat_key,
                Conversation.thread_key == thread_key,
                Conversation.closed_at.is_(None),
            )
            .values(closed_at=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def recent_messages(self, conversation_id: int, limit: int) -> list[tuple[str, str]]:
        """The newest ``limit`` messages as (role, content), oldest first. Plain rows, not
        ``Message`` objects: a turn reads up to its whole context window every time, and ORM
        instances for each row were a tenth of a turn's CPU."""
        params = {"conversation": conversation_id, "limit": limit}
        rows = [(role, content) for role, content in await self.session.execute(_RECENT, params)]
        rows.reverse()
        return rows

    async def message_text(self, message_id: int) -> str | None:
        """One message's text; ``None`` if it no longer exists."""
        query = select(Message.content).where(Message.id == message_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def add_message(self, message: Message) -> Message:
        """Insert ``message`` (one prebuilt statement, see :mod:`storage.rows`); its id is set."""
        await insert_row(self.session, message)
        return message

    async def preferred_assistant(self, tenant_id: int, channel: str, chat_key: str) -> int | None:
        chat = {"tenant": tenant_id, "channel": channel, "chat": chat_key}
        return (await self.session.execute(_PREFERRED, chat)).scalar_one_or_none()

    async def set_preferred_assistant(
        self, tenant_id: int, channel: str, chat_key: str, assistant_id: int, now: datetime
    ) -> None:
        query = select(ChatPreference).where(
            ChatPreference.tenant_id == tenant_id,
            ChatPreference.channel == channel,
            ChatPreference.chat_key == chat_key,
        )
        pref = (await self.session.execute(query)).scalar_one_or_none()
        if pref is None:
            self.session.add(
                ChatPreference(
                    tenant_id=tenant_id,
                    channel=channel,
                    chat_key=chat_key,
                    assistant_id=assistant_id,
                    updated_at=now,
                )
            )
        else:
            pref.assistant_id = assistant_id
            pref.updated_at = now
        await self.session.flush()
