"""Telegram message → :class:`InboundMessage`. Raw Telegram objects stop here.

Which messages reach the pipeline: in private chats every message a person sends; in groups
only those addressed to the bot (a command, an @mention, or a reply to one of its messages), so
ordinary group chatter costs no database work at all.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from aiogram.enums import ChatType, ContentType, MessageEntityType
from aiogram.types import Message

from core.envelope import Attachment, AttachmentKind, InboundMessage
from core.scopes import telegram_group_scope, telegram_private_scope

CHANNEL = "telegram"

Downloader = Callable[[str], Awaitable[bytes]]

#: Content a person sends that we cannot use: answered with "not supported" (private chats).
_UNSUPPORTED = frozenset(
    {
        ContentType.STICKER,
        ContentType.VIDEO,
        ContentType.VIDEO_NOTE,
        ContentType.ANIMATION,
        ContentType.CONTACT,
        ContentType.LOCATION,
        ContentType.VENUE,
        ContentType.POLL,
        ContentType.DICE,
        ContentType.GAME,
        ContentType.STORY,
        ContentType.PAID_MEDIA,
        ContentType.CHECKLIST,
        ContentType.LIVE_PHOTO,
    }
)
_GROUPS = frozenset({ChatType.GROUP, ChatType.SUPERGROUP})
_COMMAND = re.compile(r"^/[A-Za-z0-9_]+(?:@(\w+))?")


@dataclass(frozen=True, slots=True)
class BotIdentity:
    id: int
    username: str


private_scope = telegram_private_scope
group_scope = telegram_group_scope


def to_envelope(
    message: Message, update_id: int, me: BotIdentity, download: Downloader
) -> InboundMessage | None:
    """The envelope for ``message``, or None when the bot should stay silent."""
    user = message.from_user
    if user is None or user.is_bot:
        return None  # other bots, channel posts, anonymous group admins
    chat = message.chat
    private = chat.type == ChatType.PRIVATE
    if not private and chat.type not in _GROUPS:
        return None
    text = message.text or message.caption or ""
    attachments = _attachments(message, download)
    if not text and not attachments:
        return None  # service messages: members joined, title changed, pinned...
    if not private:
        if not _addressed_to_bot(message, text, me):
            return None
        text = _strip_mention(text, me.username)
    user_id = str(user.id)
    return InboundMessage(
        channel=CHANNEL,
        scope_key=private_scope(user_id) if private else group_scope(chat.id),
        chat_key=str(chat.id),
        user_id=user_id,
        user_name=user.username or user.full_name,
        text=text,
        received_at=message.date,
        thread_key=str(message.message_thread_id) if message.is_topic_message else "",
        is_private=private,
        update_key=str(update_id),
        attachments=attachments,
        language_code=user.language_code or "",
    )


def _addressed_to_bot(message: Message, text: str, me: BotIdentity) -> bool:
    command = _COMMAND.match(text)
    if command is not None:
        target = command.group(1)
        return target is None or target.lower() == me.username.lower()
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == me.id:
        return True
    for entity in message.entities or message.caption_entities or ():
        if entity.type == MessageEntityType.TEXT_MENTION and entity.user is not None:
            if entity.user.id == me.id:
                return True
        elif entity.type == MessageEntityType.MENTION:
            mention = entity.extract_from(text)
            if mention.lower() == f"@{me.username.lower()}":
                return True
    return False


def _strip_mention(text: str, username: str) -> str:
    """``@bot summarise this`` → ``summarise this`` (``/help@bot`` is the registry's job)."""
    stripped = re.sub(rf"(?<![\w@/])@{re.escape(username)}\b", "", text, flags=re.IGNORECASE)
    if stripped == text:
        return text
    return re.sub(r"[ \t]{2,}", " ", stripped).strip()


def _attachments(message: Message, download: Downloader) -> tuple[Attachment, ...]:
    def attachment(
        kind: AttachmentKind, file_id: str, mime: str | None, name: str | None, size: int | None
    ) -> tuple[Attachment, ...]:
        return (Attachment(kind, mime, name, size, partial(download, file_id)),)

    if message.photo:
        largest = max(
            message.photo, key=lambda size: (size.width * size.height, size.file_size or 0)
        )
        return attachment("image", largest.file_id, "image/jpeg", None, largest.file_size)
    if (voice := message.voice) is not None:
        mime = voice.mime_type or "audio/ogg"
        return attachment("audio", voice.file_id, mime, "voice.ogg", voice.file_size)
    if (audio := message.audio) is not None:
        name = audio.file_name or "audio.mp3"
        return attachment("audio", audio.file_id, audio.mime_type, name, audio.file_size)
    if (doc := message.document) is not None:
        return attachment("document", doc.file_id, doc.mime_type, doc.file_name, doc.file_size)
    if message.content_type in _UNSUPPORTED:
        return (Attachment("other", None, None, None, _nothing),)
    return ()


async def _nothing() -> bytes:
    """Unsupported content is never downloaded: the pipeline refuses it first."""
    return b""
