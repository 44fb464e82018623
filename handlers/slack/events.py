"""Slack payloads → channel-neutral envelopes. Raw payloads stop here.

Identity (see DESIGN.md §5): a workspace is the scope an invite binds (``team:T…``); members are
``T…/U…``; a thread is a conversation, so a top-level message starts one (its ``ts`` becomes the
thread the bot answers in) and replies in the thread continue it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.envelope import Attachment, AttachmentKind, InboundMessage
from core.scopes import slack_scope
from handlers.slack.sink import SlackTarget

CHANNEL = "slack"
#: Message subtypes that are a person writing; edits, joins, bot posts etc. are not.
_PERSON_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})
#: Longest dedup key kept as is (``processed_updates.update_key`` holds 200 characters).
MAX_KEY_LENGTH = 200
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")

Payload = Mapping[str, Any]
#: Downloads a ``url_private`` with the bot token (set by the channel).
Fetcher = Callable[[str], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Inbound:
    message: InboundMessage
    target: SlackTarget


scope_key = slack_scope


def member_id(team_id: str, user_id: str) -> str:
    return f"{team_id}/{user_id}"


def from_event(
    body: Payload,
    event: Payload,
    *,
    bot_user_id: str | None,
    fetch: Fetcher,
    now: Callable[[], datetime],
) -> Inbound | None:
    """A DM (``message`` in an ``im``) or an ``app_mention`` in a channel; None to ignore."""
    kind = event.get("type")
    user = event.get("user")
    if not isinstance(user, str) or not user or user == bot_user_id:
        return None
    if event.get("bot_id") or event.get("bot_profile"):
        return None
    channel_id = str(event.get("channel") or "")
    if kind == "message":
        if event.get("channel_type") != "im" or event.get("subtype") not in _PERSON_SUBTYPES:
            return None
    elif kind == "app_mention":
        if channel_id.startswith("D") or event.get("subtype") not in _PERSON_SUBTYPES:
            return None  # a DM arrives as message.im as well: answer it once
    else:
        return None
    team_id = str(body.get("team_id") or event.get("team") or "")
    ts = str(event.get("ts") or "")
    if not team_id or not channel_id or not ts:
        return None
    thread_ts = str(event.get("thread_ts") or ts)
    text = str(event.get("text") or "")
    if kind == "app_mention":
        text = strip_mention(text, bot_user_id)
    event_id = body.get("event_id")
    message = InboundMessage(
        channel=CHANNEL,
        scope_key=scope_key(team_id),
        chat_key=f"{team_id}/{channel_id}",
        user_id=member_id(team_id, user),
        text=text,
        received_at=_time(ts, now),
        thread_key=thread_ts,
        is_private=event.get("channel_type") == "im",
        update_key=dedup_key(str(event_id)) if event_id else None,
        attachments=tuple(_attachments(event.get("files"), fetch)),
    )
    return Inbound(
        message,
        SlackTarget(channel_id=channel_id, team_id=team_id, user_id=user, thread_ts=thread_ts),
    )


def from_command(
    command: Payload, *, now: Callable[[], datetime], fallback_key: str | None = None
) -> Inbound | None:
    """``/sb join CODE`` → ``/join CODE`` through the same pipeline; a bare ``/sb`` is help.

    The dedup key is the command's ``trigger_id``; a command without one uses
    ``fallback_key`` (see :func:`handlers.slack.request.replay_key`), so that the same signed
    request posted again is still handled once.
    """
    team_id = str(command.get("team_id") or "")
    user = str(command.get("user_id") or "")
    channel_id = str(command.get("channel_id") or "")
    if not (team_id and user and channel_id):
        return None
    text = "/" + (str(command.get("text") or "").strip().lstrip("/") or "help")
    trigger = command.get("trigger_id")
    is_private = channel_id.startswith("D") or command.get("channel_name") == "directmessage"
    message = InboundMessage(
        channel=CHANNEL,
        scope_key=scope_key(team_id),
        chat_key=f"{team_id}/{channel_id}",
        user_id=member_id(team_id, user),
        user_name=command.get("user_name") or None,
        text=text,
        received_at=now(),
        is_private=is_private,
        update_key=dedup_key(str(trigger)) if trigger else fallback_key,
    )
    return Inbound(
        message,
        SlackTarget(
            channel_id=channel_id,
            team_id=team_id,
            user_id=user,
            response_url=command.get("response_url") or None,
        ),
    )


def dedup_key(value: str) -> str:
    """An id Slack gave, as a dedup key; one too long for the key column is hashed (stable)."""
    if len(value) <= MAX_KEY_LENGTH:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def strip_mention(text: str, bot_user_id: str | None) -> str:
    """``<@UBOT> summarise this`` → ``summarise this`` (other people's mentions stay)."""
    if bot_user_id:
        text = _MENTION.sub(lambda m: "" if m.group(1) == bot_user_id else m.group(0), text)
    else:
        text = _MENTION.sub("", text, count=1)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _attachments(files: object, fetch: Fetcher) -> list[Attachment]:
    if not isinstance(files, list):
        return []
    found: list[Attachment] = []
    for item in files:
        if not isinstance(item, Mapping):
            continue
        url = item.get("url_private_download") or item.get("url_private")
        if not isinstance(url, str):
            continue
        mime = item.get("mimetype")
        size = item.get("size")
        found.append(
            Attachment(
                kind=_kind(mime if isinstance(mime, str) else None),
                mime_type=mime or None,
                file_name=item.get("name") or None,
                size=size if isinstance(size, int) else None,
                fetch=_bound(fetch, url),
            )
        )
    return found


def _bound(fetch: Fetcher, url: str) -> Callable[[], Awaitable[bytes]]:
    async def run() -> bytes:
        return await fetch(url)

    return run


def _kind(mime: str | None) -> AttachmentKind:
    if mime is None:
        return "document"
    if mime.startswith("image/"):
        return "image"
    if mime.startswith("audio/"):
        return "audio"
    return "document"


def _time(ts: str, now: Callable[[], datetime]) -> datetime:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (ValueError, OverflowError):
        return now()
