"""A local fake Telegram Bot API server speaking the real HTTP protocol.

``FakeTelegramServer`` is an aiohttp server on ``127.0.0.1`` (port 0). Point aiogram at it with
``TelegramAPIServer.from_base(server.base_url)`` (``TELEGRAM_API_BASE``). It serves

- ``POST /bot<token>/<method>`` with JSON, url-encoded or multipart bodies, answering
  ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description",
  "parameters"}`` like Telegram: getMe, getUpdates (long polling with ``offset``/``timeout``),
  sendMessage, sendMessageDraft, editMessageText, deleteMessage, sendChatAction, sendDocument,
  sendPhoto, sendVoice, sendAudio, setMyCommands, setWebhook, deleteWebhook, getWebhookInfo,
  getFile;
- ``GET /file/bot<token>/<file_path>`` file downloads.

Realism where the adapter relies on it
    A wrong token gets 401; an unknown method 404. Text with ``parse_mode=HTML`` is parsed like
    Telegram does (allowed tags only, balanced, known entities); bad markup gets 400
    "Bad Request: can't parse entities: ...". Text longer than 4096 characters after parsing
    gets "message is too long"; an edit that changes nothing gets "message is not modified";
    getUpdates while a webhook is set gets 409. Drafts only work in private chats.

Updates
    Build them with :meth:`private_message`, :meth:`group_message` (media via keyword
    arguments: ``photo=bytes``, ``voice=bytes``, ``document=(name, mime, bytes)``,
    ``sticker=True``) and hand them to :meth:`send_update`: queued for getUpdates, or, when a
    webhook is set, POSTed to it with the ``X-Telegram-Bot-Api-Secret-Token`` header.

Failures on demand
    ``fail_next(method, status=429, retry_after=1, after=0, count=1, description=None)``: the
    ``count`` calls of ``method`` after the next ``after`` successful ones fail.

Inspection
    ``calls`` records every API call (method, decoded params, uploaded files, monotonic time,
    HTTP status); ``calls_to(method)`` filters the successful ones. ``chat_messages(chat_id)``
    is the chat's current state (bot messages after edits), each with the displayed ``text``.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

JSON = dict[str, Any]
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
DOWNLOAD_LIMIT = 20 * 1024 * 1024
DEFAULT_TOKEN = "123456:TEST-fake-telegram-token"

#: Fields that are strings even when they look like JSON (``text="42"``).
_STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "url",
        "secret_token",
        "file_id",
        "action",
        "language_code",
        "description",
        "ip_address",
        "business_connection_id",
        "title",
        "payload",
        "error_message",
        "telegram_payment_charge_id",
        "pre_checkout_query_id",
    }
)
_ALLOWED_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)((?:\s+[\w-]+(?:=(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?)*)\s*>")
_COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")


class ApiError(Exception):
    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


@dataclass(frozen=True)
class ApiCall:
    method: str
    params: JSON
    at: float
    status: int
    files: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class _Failure:
    status: int
    retry_after: int | None
    description: str | None
    after: int
    count: int


@dataclass
class StoredMessage:
    message_id: int
    chat_id: int
    text: str | None
    from_bot: bool
    #: Every text this message has shown (the first send, then each edit).
    history: list[str] = field(default_factory=list)
    document: JSON | None = None
    photo: list[JSON] | None = None
    #: A voice message or audio file: ``{"voice": {...}}`` / ``{"audio": {...}}``.
    media: JSON | None = None
    caption: str | None = None
    #: The last text as sent, with its parse_mode (what "not modified" compares).
    markup: tuple[str, Any] | None = None


@dataclass
class _File:
    file_id: str
    unique_id: str
    path: str
    data: bytes


def parse_html(markup: str) -> str:
    """Telegram's HTML parser, reduced to what matters here: the displayed text or ApiError."""
    out: list[str] = []
    stack: list[str] = []
    index = 0
    while index < len(markup):
        char = markup[index]
        if char == "<":
            match = _TAG.match(markup, index)
            if match is None:
                raise _entities_error(f"Unsupported start tag at byte offset {index}")
            closing, name = match.group(1) == "/", match.group(2).lower()
            if name not in _ALLOWED_TAGS:
                raise _entities_error(f'Unsupported start tag "{name}" at byte offset {index}')
            if closing:
                if not stack or stack[-1] != name:
                    expected = f'"</{stack[-1]}>"' if stack else "none"
                    raise _entities_error(
                        f"Unmatched end tag at byte offset {index}, expected {expected}, "
                        f'found "</{name}>"'
                    )
                stack.pop()
            else:
                if name == "a" and "href" not in match.group(3):
                    raise _entities_error("Can't find a URL in the a tag")
                stack.append(name)
            index = match.end()
        elif char == "&":
            match = _ENTITY.match(markup, index)
            if match is None:
                # Telegram leaves an unknown "&word" as text but rejects "&...;" it cannot decode.
                semicolon = re.match(r"&[#\w]+;", markup[index:])
                if semicolon is not None:
                    raise _entities_error(f"Unsupported HTML entity at byte offset {index}")
                out.append("&")
                index += 1
                continue
            out.append(html.unescape(match.group(0)))
            index = match.end()
        elif char == ">":
            out.append(">")
            index += 1
        else:
            out.append(char)
            index += 1
    if stack:
        raise _entities_error(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def _entities_error(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: can't parse entities: {detail}")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class FakeTelegramServer:
    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        username: str = "switchboard_test_bot",
        first_update_id: int = 100_001,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])  # as on Telegram: the token starts with it
        self.username = username
        self.calls: list[ApiCall] = []
        self.webhook: JSON | None = None
        #: setMyCommands results, keyed by the scope's JSON (``'{"type": "default"}'``).
        self.commands: dict[str, list[JSON]] = {}
        #: setMyCommands results given a ``language_code``: keyed by (scope's JSON, language).
        self.localized_commands: dict[tuple[str, str], list[JSON]] = {}
        self.webhook_deliveries: list[tuple[int, int]] = []  # (update_id, HTTP status)
        self._updates: list[JSON] = []
        self._update_ids = itertools.count(first_update_id)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._messages: dict[int, list[StoredMessage]] = {}
        self._chat_types: dict[int, str] = {}
        self._files: dict[str, _File] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._new_update = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.port: int | None = None
        self._methods: dict[str, Callable[[JSON, Mapping[str, bytes]], Any]] = {
            "getme": self._get_me,
            "sendmessage": self._send_message,
            "sendmessagedraft": self._send_message_draft,
            "editmessagetext": self._edit_message_text,
            "deletemessage": self._delete_message,
            "sendchataction": self._send_chat_action,
            "senddocument": self._send_document,
            "sendphoto": self._send_photo,
            "sendvoice": self._send_voice,
            "sendaudio": self._send_audio,
            "setmycommands": self._set_my_commands,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "getfile": self._get_file,
        }
        self._methods.update(self._payment_methods())

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._client = aiohttp.ClientSession()

    async def stop(self) -> None:
        async with self._new_update:
            self._new_update.notify_all()
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeTelegramServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        assert self.port is not None, "server not started"
        return f"http://127.0.0.1:{self.port}"

    # -- test controls --------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: int | None = None,
        after: int = 0,
        count: int = 1,
        description: str | None = None,
    ) -> None:
        if status == 429 and retry_after is None:
            retry_after = 1
        self._failures.setdefault(method.lower(), []).append(
            _Failure(status, retry_after, description, after, count)
        )

    def calls_to(
        self, method: str, *, chat_id: int | None = None, ok_only: bool = True
    ) -> list[ApiCall]:
        return [
            c
            for c in self.calls
            if c.method.lower() == method.lower()
            and (not ok_only or c.ok)
            and (chat_id is None or c.params.get("chat_id") == chat_id)
        ]

    def chat_messages(self, chat_id: int, *, from_bot: bool = True) -> list[StoredMessage]:
        return [m for m in self._messages.get(chat_id, []) if m.from_bot == from_bot]

    @property
    def queued_updates(self) -> int:
        """Updates not yet confirmed by a getUpdates offset past them."""
        return len(self._updates)

    def bot_texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.chat_messages(chat_id) if m.text is not None]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    "condition not met; calls: " + ", ".join(c.method for c in self.calls[-20:])
                )
            await asyncio.sleep(0.02)

    async def wait_for_bot_messages(
        self, chat_id: int, count: int = 1, within: float = 30.0
    ) -> list[StoredMessage]:
        await self.wait_for(lambda: len(self.chat_messages(chat_id)) >= count, within)
        return self.chat_messages(chat_id)

    def add_file(self, data: bytes, path: str | None = None) -> _File:
        file_id = "F" + uuid.uuid4().hex
        stored = _File(file_id, uuid.uuid4().hex[:16], path or f"files/{file_id}.bin", data)
        self._files[file_id] = stored
        return stored

    # -- updates --------------------------------------------------------------------------------

    def private_message(
        self,
        user_id: int,
        text: str | None = None,
        *,
        username: str | None = None,
        first_name: str = "Test",
        **media: Any,
    ) -> JSON:
        chat = {"id": user_id, "type": "private", "first_name": first_name}
        if username:
            chat["username"] = username
        return self._message_update(chat, self._user(user_id, username, first_name), text, **media)

    def group_message(
        self,
        chat_id: int,
        user_id: int,
        text: str | None = None,
        *,
        title: str = "Team",
        chat_type: str = "supergroup",
        username: str | None = None,
        first_name: str = "Member",
        reply_to: StoredMessage | None = None,
        **media: Any,
    ) -> JSON:
        chat = {"id": chat_id, "type": chat_type, "title": title}
        return self._message_update(
            chat, self._user(user_id, username, first_name), text, reply_to=reply_to, **media
        )

    async def send_update(self, update: JSON) -> int | None:
        """Deliver like Telegram: to the webhook if one is set (returns its HTTP status),
        else into the getUpdates queue."""
        if self.webhook is not None:
            return await self.post_webhook(update)
        async with self._new_update:
            self._updates.append(update)
            self._new_update.notify_all()
        return None

    async def post_webhook(
        self, update: JSON, *, secret: str | None = None, url: str | None = None
    ) -> int:
        """POST ``update`` to the registered webhook (or ``url``), with its secret token unless
        ``secret`` overrides it ("" sends no header)."""
        assert self._client is not None
        target = url or (self.webhook or {}).get("url")
        assert target, "no webhook registered"
        token = (self.webhook or {}).get("secret_token") if secret is None else secret
        headers = {"X-Telegram-Bot-Api-Secret-Token": token} if token else {}
        async with self._client.post(target, json=update, headers=headers) as response:
            self.webhook_deliveries.append((update["update_id"], response.status))
            return response.status

    def _user(self, user_id: int, username: str | None, first_name: str) -> JSON:
        user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        return user

    def _message_update(
        self,
        chat: JSON,
        user: JSON,
        text: str | None,
        *,
        reply_to: StoredMessage | None = None,
        photo: bytes | None = None,
        voice: bytes | None = None,
        audio: tuple[str, str, bytes] | None = None,
        document: tuple[str, str, bytes] | None = None,
        sticker: bool = False,
        caption: str | None = None,
    ) -> JSON:
        chat_id = chat["id"]
        self._chat_types[chat_id] = chat["type"]
        message_id = self._next_message_id(chat_id)
        message: JSON = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": user,
        }
        if text is not None:
            message["text"] = text
            entities = _entities_for(text)
            if entities:
                message["entities"] = entities
        if caption is not None:
            message["caption"] = caption
            entities = _entities_for(caption)
            if entities:
                message["caption_entities"] = entities
        if photo is not None:
            thumb = self.add_file(photo[: max(1, len(photo) // 10)], "photos/thumb.jpg")
            full = self.add_file(photo, "photos/file_1.jpg")
            message["photo"] = [
                {
                    "file_id": thumb.file_id,
                    "file_unique_id": thumb.unique_id,
                    "width": 90,
                    "height": 90,
                    "file_size": len(thumb.data),
                },
                {
                    "file_id": full.file_id,
                    "file_unique_id": full.unique_id,
                    "width": 1280,
                    "height": 960,
                    "file_size": len(full.data),
                },
            ]
        if voice is not None:
            stored = self.add_file(voice, "voice/file_2.oga")
            message["voice"] = {
                "file_id": stored.file_id,
                "file_unique_id": stored.unique_id,
                "duration": 2,
                "mime_type": "audio/ogg",
                "file_size": len(voice),
            }
        if audio is not None:
            name, mime, data = audio
            stored = self.add_file(data, f"music/{name}")
            message["audio"] = {
                "file_id": stored.file_id,
                "file_unique_id": stored.unique_id,
                "duration": 3,
                "file_name": name,
                "mime_type": mime,
                "file_size": len(data),
            }
        if document is not None:
            name, mime, data = document
            stored = self.add_file(data, f"documents/{name}")
            message["document"] = {
                "file_id": stored.file_id,
                "file_unique_id": stored.unique_id,
                "file_name": name,
                "mime_type": mime,
                "file_size": len(data),
            }
        if sticker:
            stored = self.add_file(b"RIFF-webp", "stickers/file_3.webp")
            message["sticker"] = {
                "file_id": stored.file_id,
                "file_unique_id": stored.unique_id,
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": "👍",
            }
        if reply_to is not None:
            replied: JSON = {
                "message_id": reply_to.message_id,
                "date": int(time.time()),
                "chat": chat,
            }
            if reply_to.from_bot:
                replied["from"] = self._bot_user()
            if reply_to.text is not None:
                replied["text"] = reply_to.text
            message["reply_to_message"] = replied
        self._messages.setdefault(chat_id, []).append(
            StoredMessage(message_id, chat_id, text, from_bot=False, history=[text or ""])
        )
        return {"update_id": next(self._update_ids), "message": message}

    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def _bot_user(self) -> JSON:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Switchboard",
            "username": self.username,
        }

    # -- HTTP -----------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, files = await _read_params(request)
        status = 200
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            result = await self._dispatch(method, params, files)
            body: JSON = {"ok": True, "result": result}
        except ApiError as exc:
            status = exc.status
            body = {"ok": False, "error_code": exc.status, "description": exc.description}
            if exc.retry_after is not None:
                body["parameters"] = {"retry_after": exc.retry_after}
        if method.lower() != "getupdates" or status != 200 or body.get("result"):
            self.calls.append(ApiCall(method, params, time.monotonic(), status, files))
        return web.json_response(body, status=status)

    async def _dispatch(self, method: str, params: JSON, files: Mapping[str, bytes]) -> Any:
        name = method.lower()
        self._maybe_fail(name)
        if name == "getupdates":
            return await self._get_updates(params)
        handler = self._methods.get(name)
        if handler is None:
            raise ApiError(404, "Not Found: method not found")
        return handler(params, files)

    def _maybe_fail(self, method: str) -> None:
        queue = self._failures.get(method)
        if not queue:
            return
        failure = queue[0]
        if failure.after > 0:
            failure.after -= 1
            return
        failure.count -= 1
        if failure.count <= 0:
            queue.pop(0)
        if failure.status == 429:
            raise ApiError(
                429,
                failure.description or f"Too Many Requests: retry after {failure.retry_after}",
                retry_after=failure.retry_after,
            )
        raise ApiError(failure.status, failure.description or "Bad Request: injected failure")

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        for stored in self._files.values():
            if stored.path == path:
                self.calls.append(ApiCall("download", {"path": path}, time.monotonic(), 200))
                return web.Response(body=stored.data)
        return web.Response(status=404)

    # -- methods --------------------------------------------------------------------------------

    def _get_me(self, _params: JSON, _files: Mapping[str, bytes]) -> JSON:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _get_updates(self, params: JSON) -> list[JSON]:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is "
                "active; use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        async with self._new_update:
            if offset:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            if not self._updates and timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_update.wait(), timeout)
            return list(self._updates[:limit])

    def _send_message(self, params: JSON, _files: Mapping[str, bytes]) -> JSON:
        chat_id = self._chat(params)
        text = self._displayed_text(params, "text", TEXT_LIMIT)
        stored = self._store_bot_message(chat_id, text=text)
        stored.history.append(text)
        stored.markup = (str(params["text"]), params.get("parse_mode"))
        return self._message_json(stored)

    def _send_message_draft(self, params: JSON, _files: Mapping[str, bytes]) -> bool:
        chat_id = self._chat(params)
        if self._chat_types.get(chat_id, "private" if chat_id > 0 else "group") != "private":
            raise ApiError(400, "Bad Request: drafts can be sent only to private chats")
        if not int(params.get("draft_id") or 0):
            raise ApiError(400, "Bad Request: draft_id must be non-zero")
        if params.get("text"):
            self._displayed_text(params, "text", TEXT_LIMIT)
        return True

    def _edit_message_text(self, params: JSON, _files: Mapping[str, bytes]) -> JSON:
        chat_id = self._chat(params)
        message_id = int(params.get("message_id") or 0)
        stored = next(
            (
                m
                for m in self._messages.get(chat_id, [])
                if m.message_id == message_id and m.from_bot
            ),
            None,
        )
        if stored is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        text = self._displayed_text(params, "text", TEXT_LIMIT)
        markup = (str(params["text"]), params.get("parse_mode"))
        if markup == stored.markup:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message "
                "content and reply markup are exactly the same as a current "
                "content and reply markup of the message",
            )
        stored.markup = markup
        stored.text = text
        stored.history.append(text)
        return self._message_json(stored)

    def _delete_message(self, params: JSON, _files: Mapping[str, bytes]) -> bool:
        chat_id = self._chat(params)
        message_id = int(params.get("message_id") or 0)
        messages = self._messages.get(chat_id, [])
        for index, message in enumerate(messages):
            if message.message_id == message_id:
                del messages[index]
                return True
        raise ApiError(400, "Bad Request: message to delete not found")

    def _send_chat_action(self, params: JSON, _files: Mapping[str, bytes]) -> bool:
        self._chat(params)
        if not params.get("action"):
            raise ApiError(400, "Bad Request: wrong type of action")
        return True

    def _send_document(self, params: JSON, files: Mapping[str, bytes]) -> JSON:
        chat_id = self._chat(params)
        name, data = self._upload(params, files, "document")
        caption = self._caption(params)
        stored = self._store_bot_message(chat_id, text=None)
        kept = self.add_file(data, f"documents/{name}")
        stored.document = {
            "file_id": kept.file_id,
            "file_unique_id": kept.unique_id,
            "file_name": name,
            "file_size": len(data),
        }
        stored.caption = caption
        return self._message_json(stored)

    def _send_photo(self, params: JSON, files: Mapping[str, bytes]) -> JSON:
        chat_id = self._chat(params)
        name, data = self._upload(params, files, "photo")
        if not data:
            raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
        caption = self._caption(params)
        stored = self._store_bot_message(chat_id, text=None)
        kept = self.add_file(data, f"photos/{name}")
        stored.photo = [
            {
                "file_id": kept.file_id,
                "file_unique_id": kept.unique_id,
                "width": 800,
                "height": 600,
                "file_size": len(data),
            }
        ]
        stored.caption = caption
        return self._message_json(stored)

    def _send_voice(self, params: JSON, files: Mapping[str, bytes]) -> JSON:
        """Like Telegram: OGG/Opus (or MP3/M4A) plays as a voice message, up to 50 MB."""
        return self._send_media(params, files, "voice", (b"OggS", b"ID3", b"\xff\xfb"))

    def _send_audio(self, params: JSON, files: Mapping[str, bytes]) -> JSON:
        """An MP3 or M4A music file, up to 50 MB."""
        return self._send_media(params, files, "audio", (b"ID3", b"\xff\xfb", b"\x00\x00\x00"))

    def _send_media(
        self, params: JSON, files: Mapping[str, bytes], kind: str, signatures: tuple[bytes, ...]
    ) -> JSON:
        chat_id = self._chat(params)
        name, data = self._upload(params, files, kind)
        if len(data) > 50 * 1024 * 1024:
            raise ApiError(400, "Bad Request: file is too big")
        if not data.startswith(signatures):
            raise ApiError(400, f"Bad Request: wrong file type for {kind}")
        caption = self._caption(params)
        stored = self._store_bot_message(chat_id, text=None)
        kept = self.add_file(data, f"{kind}/{name}")
        stored.media = {
            kind: {
                "file_id": kept.file_id,
                "file_unique_id": kept.unique_id,
                "duration": 1,
                "file_size": len(data),
            }
        }
        stored.caption = caption
        return self._message_json(stored)

    def _set_my_commands(self, params: JSON, _files: Mapping[str, bytes]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: commands are invalid")
        for command in commands:
            if not _COMMAND_NAME.match(str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        scope = json.dumps(params.get("scope") or {"type": "default"}, sort_keys=True)
        language = params.get("language_code")
        if language:  # the menu of the apps set to that language (ISO 639-1, as Telegram checks)
            if not re.fullmatch(r"[a-z]{2}", str(language)):
                raise ApiError(400, "Bad Request: invalid language code specified")
            self.localized_commands[(scope, str(language))] = commands
        else:
            self.commands[scope] = commands
        return True

    def _set_webhook(self, params: JSON, _files: Mapping[str, bytes]) -> bool:
        url = params.get("url") or ""
        if not url:
            return self._delete_webhook(params, _files)
        if not re.match(r"^https?://", url):  # the real API insists on https
            raise ApiError(400, "Bad Request: bad webhook: HTTPS url must be provided")
        secret = params.get("secret_token")
        if secret is not None and not re.match(r"^[A-Za-z0-9_-]{1,256}$", secret):
            raise ApiError(
                400, "Bad Request: bad webhook: secret token contains unallowed characters"
            )
        self.webhook = {
            "url": url,
            "secret_token": secret,
            "allowed_updates": params.get("allowed_updates"),
        }
        return True

    def _delete_webhook(self, params: JSON, _files: Mapping[str, bytes]) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        return True

    def _get_webhook_info(self, _params: JSON, _files: Mapping[str, bytes]) -> JSON:
        return {
            "url": (self.webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    def _get_file(self, params: JSON, _files: Mapping[str, bytes]) -> JSON:
        stored = self._files.get(str(params.get("file_id")))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if len(stored.data) > DOWNLOAD_LIMIT:
            raise ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.unique_id,
            "file_size": len(stored.data),
            "file_path": stored.path,
        }

    # -- payments (Telegram Stars) --------------------------------------------------------------
    #
    # sendInvoice, createInvoiceLink, answerPreCheckoutQuery, refundStarPayment and
    # editUserStarSubscription, validated as the Bot API documents them for Stars (currency XTR,
    # no provider token, one price, subscription_period 2592000 and at most 10000 Stars).
    # "A user pays" is :meth:`pay`: a pre_checkout_query update, then, when the bot answered
    # ok, a successful_payment message with a new telegram_payment_charge_id; :meth:`renew`
    # is Telegram charging a subscription again; :meth:`refunded_payment` the service message.

    def _payment_methods(self) -> dict[str, Callable[[JSON, Mapping[str, bytes]], Any]]:
        #: Every invoice made: sendInvoice's (with ``chat_id``) and createInvoiceLink's (``url``).
        self.invoices: list[JSON] = []
        #: pre_checkout_query id → the bot's answer (``ok``, ``error_message``, seconds taken).
        self.pre_checkout_answers: dict[str, JSON] = {}
        #: telegram_payment_charge_id → the charge (user, amount, payload, refunded, canceled).
        self.charges: dict[str, JSON] = {}
        self._queries: dict[str, float] = {}
        self._charge_ids = itertools.count(1)
        return {
            "sendinvoice": self._send_invoice,
            "createinvoicelink": self._create_invoice_link,
            "answerprecheckoutquery": self._answer_pre_checkout_query,
            "refundstarpayment": self._refund_star_payment,
            "edituserstarsubscription": self._edit_user_star_subscription,
        }

    def _invoice_params(self, params: JSON) -> JSON:
        title, description = str(params.get("title") or ""), str(params.get("description") or "")
        payload = str(params.get("payload") or "")
        if not 1 <= len(title) <= 32:
            raise ApiError(400, "Bad Request: INVOICE_TITLE_INVALID")
        if not 1 <= len(description) <= 255:
            raise ApiError(400, "Bad Request: INVOICE_DESCRIPTION_INVALID")
        if not 1 <= len(payload.encode()) <= 128:
            raise ApiError(400, "Bad Request: INVOICE_PAYLOAD_INVALID")
        currency = params.get("currency")
        prices = params.get("prices")
        if currency != "XTR":
            raise ApiError(400, "Bad Request: CURRENCY_INVALID")  # this fake sells Stars only
        if params.get("provider_token"):
            raise ApiError(400, "Bad Request: PAYMENT_PROVIDER_INVALID")
        if not isinstance(prices, list) or len(prices) != 1:
            raise ApiError(400, "Bad Request: STARS_INVOICE_INVALID")
        amount = prices[0].get("amount") if isinstance(prices[0], dict) else None
        if not isinstance(amount, int) or amount <= 0:
            raise ApiError(400, "Bad Request: STARS_INVOICE_INVALID")
        return {
            "title": title,
            "description": description,
            "payload": payload,
            "currency": currency,
            "total_amount": amount,
            "label": prices[0].get("label"),
        }

    def _send_invoice(self, params: JSON, _files: Mapping[str, bytes]) -> JSON:
        chat_id = self._chat(params)
        invoice = self._invoice_params(params) | {"chat_id": chat_id}
        self.invoices.append(invoice)
        stored = self._store_bot_message(chat_id, text=None)
        stored.caption = invoice["title"]
        message = self._message_json(stored)
        message["invoice"] = {
            "title": invoice["title"],
            "description": invoice["description"],
            "start_parameter": "",
            "currency": invoice["currency"],
            "total_amount": invoice["total_amount"],
        }
        message.pop("caption", None)
        return message

    def _create_invoice_link(self, params: JSON, _files: Mapping[str, bytes]) -> str:
        invoice = self._invoice_params(params)
        period = params.get("subscription_period")
        if period is not None:
            if period != 2592000:
                raise ApiError(400, "Bad Request: SUBSCRIPTION_PERIOD_INVALID")
            if invoice["total_amount"] > 10_000:
                raise ApiError(400, "Bad Request: SUBSCRIPTION_PRICE_INVALID")
        url = f"https://t.me/$S{uuid.uuid4().hex[:16]}"
        self.invoices.append(invoice | {"url": url, "subscription_period": period})
        return url

    def invoice_for(self, payload: str) -> JSON:
        """The invoice made with ``payload`` (the newest)."""
        return next(i for i in reversed(self.invoices) if i["payload"] == payload)

    def pre_checkout_query(
        self, user_id: int, invoice: JSON, *, total_amount: int | None = None, **extra: Any
    ) -> JSON:
        """The update Telegram sends when ``user_id`` presses Pay (``extra``: fields added to
        the query as newer Bot API versions may)."""
        query_id = str(uuid.uuid4().int % 10**18)
        self._queries[query_id] = time.monotonic()
        query: JSON = {
            "id": query_id,
            "from": self._user(user_id, None, "Payer") | {"language_code": "en"},
            "currency": invoice["currency"],
            "total_amount": invoice["total_amount"] if total_amount is None else total_amount,
            "invoice_payload": invoice["payload"],
            **extra,
        }
        return {"update_id": next(self._update_ids), "pre_checkout_query": query}

    def successful_payment(
        self,
        user_id: int,
        invoice: JSON,
        *,
        charge_id: str | None = None,
        first_recurring: bool = False,
        recurring: bool = False,
        period_end: int | None = None,
        **extra: Any,
    ) -> JSON:
        """The service message of a payment (a new charge unless ``charge_id`` is given)."""
        charge_id = charge_id or f"stxC{next(self._charge_ids):06d}{uuid.uuid4().hex[:10]}"
        paid: JSON = {
            "currency": invoice["currency"],
            "total_amount": invoice["total_amount"],
            "invoice_payload": invoice["payload"],
            "telegram_payment_charge_id": charge_id,
            "provider_payment_charge_id": "",
            **extra,
        }
        if recurring or first_recurring:
            paid["is_recurring"] = True
            paid["subscription_expiration_date"] = period_end or int(time.time()) + 2592000
        if first_recurring:
            paid["is_first_recurring"] = True
        self.charges.setdefault(
            charge_id,
            {
                "user_id": user_id,
                "amount": invoice["total_amount"],
                "payload": invoice["payload"],
                "subscription": recurring or first_recurring,
                "refunded": False,
                "canceled": False,
            },
        )
        chat = {"id": user_id, "type": "private", "first_name": "Payer"}
        self._chat_types[user_id] = "private"
        message: JSON = {
            "message_id": self._next_message_id(user_id),
            "date": int(time.time()),
            "chat": chat,
            "from": self._user(user_id, None, "Payer"),
            "successful_payment": paid,
        }
        return {"update_id": next(self._update_ids), "message": message}

    def refunded_payment(self, charge_id: str) -> JSON:
        """The service message Telegram sends when a Stars payment was refunded."""
        charge = self.charges[charge_id]
        user_id = charge["user_id"]
        message: JSON = {
            "message_id": self._next_message_id(user_id),
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "Payer"},
            "from": self._user(user_id, None, "Payer"),
            "refunded_payment": {
                "currency": "XTR",
                "total_amount": charge["amount"],
                "invoice_payload": charge["payload"],
                "telegram_payment_charge_id": charge_id,
            },
        }
        return {"update_id": next(self._update_ids), "message": message}

    async def pay(
        self, user_id: int, invoice: JSON, *, within: float = 15.0, **payment: Any
    ) -> tuple[JSON, JSON | None]:
        """A user pays ``invoice``: the bot's pre-checkout answer, and the successful_payment
        update sent after an ok (None after a refusal)."""
        query = self.pre_checkout_query(user_id, invoice)
        query_id = query["pre_checkout_query"]["id"]
        await self.send_update(query)
        await self.wait_for(lambda: query_id in self.pre_checkout_answers, within)
        answer = self.pre_checkout_answers[query_id]
        if not answer["ok"]:
            return answer, None
        update = self.successful_payment(user_id, invoice, **payment)
        await self.send_update(update)
        return answer, update

    def _answer_pre_checkout_query(self, params: JSON, _files: Mapping[str, bytes]) -> bool:
        query_id = str(params.get("pre_checkout_query_id") or "")
        asked = self._queries.get(query_id)
        if asked is None or query_id in self.pre_checkout_answers:
            raise ApiError(400, "Bad Request: QUERY_ID_INVALID")
        ok = params.get("ok")
        if not isinstance(ok, bool):
            raise ApiError(400, "Bad Request: ok must be a boolean")
        error = params.get("error_message")
        if not ok and not error:
            raise ApiError(400, "Bad Request: ERROR_MESSAGE_EMPTY")
        seconds = time.monotonic() - asked
        if seconds > 10:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired")
        self.pre_checkout_answers[query_id] = {"ok": ok, "error_message": error, "seconds": seconds}
        return True

    def _charge(self, params: JSON) -> JSON:
        charge = self.charges.get(str(params.get("telegram_payment_charge_id") or ""))
        if charge is None or charge["user_id"] != params.get("user_id"):
            raise ApiError(400, "Bad Request: CHARGE_NOT_FOUND")
        return charge

    def _refund_star_payment(self, params: JSON, _files: Mapping[str, bytes]) -> bool:
        charge = self._charge(params)
        if charge["refunded"]:
            raise ApiError(400, "Bad Request: CHARGE_ALREADY_REFUNDED")
        charge["refunded"] = True
        return True

    def _edit_user_star_subscription(self, params: JSON, _files: Mapping[str, bytes]) -> bool:
        charge = self._charge(params)
        if not charge["subscription"]:
            raise ApiError(400, "Bad Request: SUBSCRIPTION_NOT_FOUND")
        if not isinstance(params.get("is_canceled"), bool):
            raise ApiError(400, "Bad Request: is_canceled must be a boolean")
        charge["canceled"] = params["is_canceled"]
        return True

    # -- helpers --------------------------------------------------------------------------------

    def _chat(self, params: JSON) -> int:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id

    def _displayed_text(self, params: JSON, key: str, limit: int) -> str:
        raw = params.get(key)
        if not isinstance(raw, str) or not raw:
            raise ApiError(400, "Bad Request: message text is empty")
        mode = params.get("parse_mode")
        if mode is not None and str(mode).lower() == "html":
            text = parse_html(raw)
        elif mode is None:
            text = raw
        else:
            raise ApiError(400, f"Bad Request: unsupported parse_mode {mode}")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > limit:
            raise ApiError(400, "Bad Request: message is too long")
        return text

    def _caption(self, params: JSON) -> str | None:
        if not params.get("caption"):
            return None
        return self._displayed_text(params, "caption", CAPTION_LIMIT)

    def _upload(
        self, params: JSON, files: Mapping[str, bytes], field_name: str
    ) -> tuple[str, bytes]:
        reference = params.get(field_name)
        if isinstance(reference, str) and reference.startswith("attach://"):
            key = reference.removeprefix("attach://")
            if key in files:
                return params.get(f"__filename__{key}", key), files[key]
        if field_name in files:
            return params.get(f"__filename__{field_name}", field_name), files[field_name]
        raise ApiError(400, f"Bad Request: there is no {field_name} in the request")

    def _store_bot_message(self, chat_id: int, text: str | None) -> StoredMessage:
        stored = StoredMessage(self._next_message_id(chat_id), chat_id, text, from_bot=True)
        self._messages.setdefault(chat_id, []).append(stored)
        return stored

    def _message_json(self, stored: StoredMessage) -> JSON:
        chat_type = self._chat_types.get(
            stored.chat_id, "private" if stored.chat_id > 0 else "supergroup"
        )
        chat: JSON = {"id": stored.chat_id, "type": chat_type}
        if chat_type != "private":
            chat["title"] = "Team"
        else:
            chat["first_name"] = "Test"
        message: JSON = {
            "message_id": stored.message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": self._bot_user(),
        }
        if stored.text is not None:
            message["text"] = stored.text
        if stored.document is not None:
            message["document"] = stored.document
        if stored.photo is not None:
            message["photo"] = stored.photo
        if stored.media is not None:
            message.update(stored.media)
        if stored.caption is not None:
            message["caption"] = stored.caption
        return message


def _entities_for(text: str) -> list[JSON]:
    """The entities Telegram would attach: a leading bot command and @mentions."""
    entities: list[JSON] = []
    command = re.match(r"^/[A-Za-z0-9_]+(?:@\w+)?", text)
    if command:
        entities.append({"type": "bot_command", "offset": 0, "length": command.end()})
    for mention in re.finditer(r"(?<![\w/])@\w{5,32}", text):
        entities.append(
            {
                "type": "mention",
                "offset": utf16_len(text[: mention.start()]),
                "length": utf16_len(mention.group(0)),
            }
        )
    return entities


async def _read_params(request: web.Request) -> tuple[JSON, dict[str, bytes]]:
    """Decode a Bot API request as Telegram does: query string, JSON, form or multipart;
    nested objects arrive as JSON strings in form fields."""
    params: JSON = dict(request.query)
    files: dict[str, bytes] = {}
    if request.method != "POST" or not request.can_read_body:
        return {k: _decode(k, v) for k, v in params.items()}, files
    if request.content_type == "application/json":
        body = await request.json()
        params.update(body if isinstance(body, dict) else {})
        return params, files
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                continue
            if part.filename is not None:
                files[part.name] = await part.read()
                params[f"__filename__{part.name}"] = part.filename
            else:
                params[part.name] = await part.text()
    else:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return {k: _decode(k, v) for k, v in params.items()}, files


def _decode(key: str, value: Any) -> Any:
    if not isinstance(value, str) or key in _STRING_FIELDS or key.startswith("__"):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value
