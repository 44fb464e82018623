"""Typed, channel-neutral envelopes. Raw channel payloads stop at the adapters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from core.text import storable

AttachmentKind = Literal["image", "audio", "document", "other"]


@dataclass(frozen=True, slots=True)
class Attachment:
    kind: AttachmentKind
    mime_type: str | None
    file_name: str | None
    size: int | None
    #: Downloads the bytes through the channel's API (lazily: only if the turn needs them).
    fetch: Callable[[], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message from a person, as every middleware sees it.

    ``scope_key`` is what an invite binds (a Telegram user or group, a Slack workspace);
    ``chat_key``/``thread_key`` locate the conversation; ``user_id`` is the sender in the
    channel's own terms (``T0001/U0001`` on Slack).
    """

    channel: str
    scope_key: str
    chat_key: str
    user_id: str
    text: str
    received_at: datetime
    user_name: str | None = None
    thread_key: str = ""
    is_private: bool = True
    #: A dedup key unique within the channel (Telegram update_id, Slack event_id).
    update_key: str | None = None
    attachments: tuple[Attachment, ...] = ()
    #: The sender's app language as the channel reports it (Telegram's ``language_code``,
    #: ``fr-CA``); "" when it says none (Slack).
    language_code: str = ""

    def __post_init__(self) -> None:
        # Whatever a channel delivers, nothing past the adapter carries text the database
        # cannot store (a NUL would let a stored answer fail after the provider billed it).
        object.__setattr__(self, "text", storable(self.text))
        if self.user_name is not None:
            object.__setattr__(self, "user_name", storable(self.user_name))


@dataclass(frozen=True, slots=True)
class OutboundFile:
    """A file for the chat: in memory (``data``) or, when too large to hold, on disk (``path``)."""

    file_name: str
    data: bytes
    mime_type: str
    caption: str = ""
    #: Read from here instead of ``data`` (an export of a million rows is never in memory).
    path: Path | None = None
    #: ``path`` is a temporary file that :meth:`discard` deletes once the file was sent.
    temporary: bool = False

    @classmethod
    def on_disk(
        cls, path: Path, file_name: str, mime_type: str, caption: str = "", temporary: bool = False
    ) -> OutboundFile:
        return cls(file_name, b"", mime_type, caption, path=path, temporary=temporary)

    @property
    def is_image(self) -> bool:
        return self.mime_type.startswith("image/")

    @property
    def size(self) -> int:
        return self.path.stat().st_size if self.path is not None else len(self.data)

    def read(self) -> bytes:
        """The whole content (small files: charts, library media)."""
        return self.path.read_bytes() if self.path is not None else self.data

    def discard(self) -> None:
        """Delete a temporary file after it has been sent (or failed to be)."""
        if self.path is not None and self.temporary:
            self.path.unlink(missing_ok=True)


class ReplyStream(Protocol):
    """A reply being written while the model streams; pacing is the channel's business."""

    async def append(self, delta: str) -> None: ...

    async def finish(self, text: str) -> None:
        """Deliver the complete answer (after it is persisted)."""

    async def abort(self, message: str) -> None:
        """Replace whatever was shown with ``message`` (the call failed)."""


class ReplySink(Protocol):
    async def send_text(self, text: str) -> None: ...

    async def send_buttons(self, text: str, buttons: Sequence[LinkButton]) -> None:
        """``text`` with a button per link (a payment link): Telegram inline URL buttons, Slack
        Block Kit buttons, plain URLs in a terminal."""

    async def send_file(self, file: OutboundFile) -> None: ...

    def open_stream(self) -> ReplyStream: ...


@runtime_checkable
class ActivitySink(Protocol):
    """A sink that can show what the bot is doing while media is made (Telegram's chat
    actions: ``upload_photo``, ``record_voice``); sinks without one simply show nothing."""

    async def show_activity(self, action: str) -> None: ...


@dataclass(frozen=True, slots=True)
class LinkButton:
    """A button that opens ``url`` (no callback: the link itself is the action)."""

    label: str
    url: str


#: The channel of an e-mail address: a ``ChatAddress("email", "ops@acme.test")``.
EMAIL_CHANNEL = "email"


@dataclass(frozen=True, slots=True)
class ChatAddress:
    """Where to write to a chat outside of a turn (a payment landed, a renewal failed).

    The fields are an :class:`InboundMessage`'s own, so any message gives its chat's address and
    each channel knows how to turn it back into a target.
    """

    channel: str
    chat_key: str
    user_id: str = ""
    thread_key: str = ""
    is_private: bool = True

    @classmethod
    def of(cls, message: InboundMessage) -> ChatAddress:
        return cls(
            channel=message.channel,
            chat_key=message.chat_key,
            user_id=message.user_id,
            thread_key=message.thread_key,
            is_private=message.is_private,
        )

    def to_json(self) -> dict[str, str | bool]:
        return {
            "channel": self.channel,
            "chat_key": self.chat_key,
            "user_id": self.user_id,
            "thread_key": self.thread_key,
            "is_private": self.is_private,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ChatAddress:
        return cls(
            channel=str(data["channel"]),
            chat_key=str(data["chat_key"]),
            user_id=str(data.get("user_id") or ""),
            thread_key=str(data.get("thread_key") or ""),
            is_private=bool(data.get("is_private", True)),
        )
