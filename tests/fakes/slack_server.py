"""A local fake Slack: the Web API, response URLs and file uploads, speaking Slack's wire format.

``FakeSlackServer`` is a real aiohttp server on ``127.0.0.1`` (port 0). Point
``AsyncWebClient(base_url=server.api_base)`` (``SLACK_API_BASE``) at it.

- ``/api/<method>`` (GET or POST) takes arguments like Slack does: query string, form
  (urlencoded or multipart) or JSON body, token in ``Authorization: Bearer`` or ``token``.
  Implemented: ``auth.test``, ``users.info``, ``chat.postMessage``, ``chat.postEphemeral``
  (recorded in ``calls`` only: nobody else sees it), ``chat.update``,
  ``chat.delete``, ``chat.startStream``, ``chat.appendStream``, ``chat.stopStream``,
  ``files.getUploadURLExternal``, ``files.completeUploadExternal``; anything else answers
  ``unknown_method`` as Slack does. Every call is recorded in ``server.calls``.
- ``/upload/<file_id>`` receives the bytes of a ``files_upload_v2`` upload.
- ``/response/<name>`` is a slash command ``response_url`` (``server.response_url(name)``);
  posts land in ``server.responses``.
- ``/files/<name>`` serves files added with ``add_file`` (``url_private_download``), bot token
  required.
- Socket Mode: ``apps.connections.open`` (with ``server.app_token``) hands out
  ``ws://…/socket``; the server greets with ``hello``, ``await server.socket_send(type,
  payload)`` pushes an envelope (``events_api``, ``slash_commands``…) and
  ``await server.socket_ack(envelope_id)`` waits for the client's acknowledgement.

Messages live in ``server.messages`` (``FakeMessage``: channel, ts, thread_ts, text, streaming);
streamed messages accumulate their ``markdown_text`` (or ``markdown_text`` chunks) across
start/append/stop. Limits enforced: ``markdown_text`` ≤ 12,000 and ``text`` ≤ 40,000 characters;
streaming outside a DM needs ``recipient_team_id`` and ``recipient_user_id``.

Failures on demand: ``rate_limit(method, retry_after=1, count=1)`` answers HTTP 429 with
``Retry-After``; ``fail(method, error, count=1)`` answers ``{"ok": false, "error": error}``;
``streaming_supported = False`` makes the stream methods ``unknown_method``.

Helpers below sign requests with Slack's real scheme (``v0=`` HMAC-SHA256 of ``v0:{ts}:{body}``)
and build event and slash command payloads.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

JSON = dict[str, Any]
MARKDOWN_LIMIT = 12_000
TEXT_LIMIT = 40_000
SOCKET_WAIT = 5.0
STREAM_METHODS = frozenset({"chat.startStream", "chat.appendStream", "chat.stopStream"})


@dataclass(slots=True)
class SlackCall:
    method: str
    args: JSON
    status: int = 200
    error: str | None = None


@dataclass(slots=True)
class FakeMessage:
    channel: str
    ts: str
    text: str
    thread_ts: str | None = None
    streaming: bool = False
    deleted: bool = False
    edits: int = 0
    via: str = "chat.postMessage"


@dataclass(slots=True)
class FakeFile:
    id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None


@dataclass(slots=True)
class _Failure:
    status: int
    error: str
    retry_after: int | None = None


class FakeSlackServer:
    def __init__(
        self,
        *,
        token: str = "xoxb-test-token",
        app_token: str = "xapp-1-test-token",
        team_id: str = "T0001",
        bot_user_id: str = "UBOT",
        bot_id: str = "B0001",
    ) -> None:
        self.token = token
        self.app_token = app_token
        self.socket_acks: dict[str, JSON] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_event = asyncio.Event()
        self._acked = asyncio.Condition()
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.streaming_supported = True
        self.users: dict[str, str] = {}
        self.calls: list[SlackCall] = []
        self.messages: list[FakeMessage] = []
        self.files: dict[str, FakeFile] = {}
        self.responses: list[JSON] = []
        self.downloads: dict[str, tuple[bytes, str]] = {}
        self._failures: defaultdict[str, list[_Failure]] = defaultdict(list)
        self._counter = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/response/{name}", self._response)
        app.router.add_get("/files/{name}", self._download)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/"

    def response_url(self, name: str = "cmd") -> str:
        return f"{self.base_url}/response/{name}"

    def add_file(self, name: str, data: bytes, mimetype: str) -> str:
        """Serve ``data`` as a private file; returns its ``url_private_download``."""
        self.downloads[name] = (data, mimetype)
        return f"{self.base_url}/files/{name}"

    # -- failures on demand ---------------------------------------------------------------------

    def rate_limit(self, method: str, retry_after: int = 1, count: int = 1) -> None:
        self._failures[method] += [_Failure(429, "ratelimited", retry_after)] * count

    def fail(self, method: str, error: str, count: int = 1) -> None:
        self._failures[method] += [_Failure(200, error)] * count

    # -- inspection -----------------------------------------------------------------------------

    def calls_to(self, method: str, *, ok_only: bool = False) -> list[SlackCall]:
        return [
            c
            for c in self.calls
            if c.method == method and not (ok_only and (c.status != 200 or c.error))
        ]

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]

    def thread(self, channel: str, thread_ts: str) -> list[FakeMessage]:
        """Replies in a thread (not deleted), oldest first."""
        return [
            m
            for m in self.messages
            if m.channel == channel and m.thread_ts == thread_ts and not m.deleted
        ]

    def find(self, channel: str, ts: str) -> FakeMessage | None:
        for message in self.messages:
            if message.channel == channel and message.ts == ts and not message.deleted:
                return message
        return None

    # -- HTTP ----------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _arguments(request)
        token = _bearer(request) or args.pop("token", None)
        call = SlackCall(method, args)
        self.calls.append(call)
        queued = self._failures.get(method)
        if queued:
            failure = queued.pop(0)
            call.status, call.error = failure.status, failure.error
            headers = (
                {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            )
            return web.json_response(
                {"ok": False, "error": failure.error}, status=failure.status, headers=headers
            )
        if method == "apps.connections.open":
            if token != self.app_token:
                return self._error(call, "invalid_auth" if token else "not_authed")
            return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"})
        if token != self.token:
            return self._error(call, "invalid_auth" if token else "not_authed")
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None or (method in STREAM_METHODS and not self.streaming_supported):
            return self._error(call, "unknown_method")
        result: JSON | str = handler(args)
        if isinstance(result, str):
            return self._error(call, result)
        return web.json_response({"ok": True, **result})

    def _error(self, call: SlackCall, error: str) -> web.Response:
        call.error = error
        return web.json_response({"ok": False, "error": error})

    async def _upload(self, request: web.Request) -> web.Response:
        file = self.files.get(request.match_info["file_id"])
        if file is None:
            return web.Response(status=404, text="unknown upload")
        file.data = await request.read()
        return web.Response(text=f"OK - {len(file.data)}")

    async def _response(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.responses.append({"url_name": request.match_info["name"], **body})
        return web.Response(text="ok")

    async def _download(self, request: web.Request) -> web.Response:
        if _bearer(request) != self.token:
            return web.Response(status=403, text="forbidden")
        found = self.downloads.get(request.match_info["name"])
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[0], content_type=found[1])

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        self._socket_event.set()
        await ws.send_json(
            {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0001"}}
        )
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    data = json.loads(frame.data)
                    if isinstance(data, dict) and "envelope_id" in data:
                        async with self._acked:
                            self.socket_acks[str(data["envelope_id"])] = data
                            self._acked.notify_all()
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self._socket_event.clear()
        return ws

    async def socket_send(self, type_: str, payload: JSON) -> str:
        """Push one Socket Mode envelope to the connected client; returns its envelope_id."""
        async with asyncio.timeout(SOCKET_WAIT):
            await self._socket_event.wait()
        envelope_id = f"env-{next(self._counter)}"
        await self._sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": type_,
                "payload": payload,
                "accepts_response_payload": type_ != "events_api",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        return envelope_id

    async def socket_ack(self, envelope_id: str) -> JSON:
        """Wait for the client to acknowledge an envelope (as Slack does before retrying)."""
        async with asyncio.timeout(SOCKET_WAIT), self._acked:
            await self._acked.wait_for(lambda: envelope_id in self.socket_acks)
        return self.socket_acks[envelope_id]

    # -- methods -------------------------------------------------------------------------------

    def _m_auth_test(self, args: JSON) -> JSON | str:
        return {
            "url": "https://acme.slack.com/",
            "team": "Acme",
            "user": "switchboard",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
        }

    def _m_users_info(self, args: JSON) -> JSON | str:
        user = str(args.get("user") or "")
        if user not in self.users:
            return "user_not_found"
        name = self.users[user]
        return {
            "user": {
                "id": user,
                "name": name.lower(),
                "real_name": name,
                "profile": {"display_name": name},
            }
        }

    def _m_chat_postMessage(self, args: JSON) -> JSON | str:
        channel = args.get("channel")
        if not channel:
            return "channel_not_found"
        text = _content(args)
        if isinstance(text, str) and text.startswith("!"):
            return text[1:]
        if text is None:
            return "no_text"
        message = FakeMessage(
            str(channel), self._ts(), text, thread_ts=args.get("thread_ts") or None
        )
        self.messages.append(message)
        return {"channel": channel, "ts": message.ts, "message": {"text": text}}

    def _m_chat_postEphemeral(self, args: JSON) -> JSON | str:
        if not args.get("channel"):
            return "channel_not_found"
        if not args.get("user"):
            return "user_not_in_channel"
        if _content(args) is None:
            return "no_text"
        return {"message_ts": self._ts()}

    def _m_chat_update(self, args: JSON) -> JSON | str:
        message = self.find(str(args.get("channel")), str(args.get("ts")))
        if message is None:
            return "message_not_found"
        text = _content(args)
        if isinstance(text, str) and text.startswith("!"):
            return text[1:]
        if text is None:
            return "no_text"
        message.text = text
        message.edits += 1
        return {"channel": message.channel, "ts": message.ts, "text": text}

    def _m_chat_delete(self, args: JSON) -> JSON | str:
        message = self.find(str(args.get("channel")), str(args.get("ts")))
        if message is None:
            return "message_not_found"
        message.deleted = True
        return {"channel": message.channel, "ts": message.ts}

    def _m_chat_startStream(self, args: JSON) -> JSON | str:
        channel = str(args.get("channel") or "")
        if not channel or not args.get("thread_ts"):
            return "invalid_arguments"
        if not channel.startswith("D") and not (
            args.get("recipient_team_id") and args.get("recipient_user_id")
        ):
            return "invalid_arguments"
        text = _stream_text(args)
        if text is None:
            return "msg_too_long"
        message = FakeMessage(
            channel,
            self._ts(),
            text,
            thread_ts=str(args["thread_ts"]),
            streaming=True,
            via="chat.startStream",
        )
        self.messages.append(message)
        return {"channel": channel, "ts": message.ts}

    def _m_chat_appendStream(self, args: JSON) -> JSON | str:
        return self._stream_step(args, stop=False)

    def _m_chat_stopStream(self, args: JSON) -> JSON | str:
        return self._stream_step(args, stop=True)

    def _stream_step(self, args: JSON, *, stop: bool) -> JSON | str:
        message = self.find(str(args.get("channel")), str(args.get("ts")))
        if message is None:
            return "message_not_found"
        if not message.streaming:
            return "message_not_in_streaming_state"
        text = _stream_text(args)
        if text is None:
            return "msg_too_long"
        message.text += text
        if stop:
            message.streaming = False
        return {"channel": message.channel, "ts": message.ts}

    def _m_files_getUploadURLExternal(self, args: JSON) -> JSON | str:
        filename, length = args.get("filename"), args.get("length")
        if not filename or not str(length or "").isdigit():
            return "invalid_arguments"
        file_id = f"F{next(self._counter):06d}"
        self.files[file_id] = FakeFile(file_id, str(filename), int(str(length)))
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, args: JSON) -> JSON | str:
        try:
            entries = json.loads(str(args.get("files") or "[]"))
        except json.JSONDecodeError:
            return "invalid_arguments"
        completed: list[JSON] = []
        for entry in entries:
            file = self.files.get(str(entry.get("id")))
            if file is None or file.data is None or len(file.data) != file.length:
                return "file_not_found"
            file.title = entry.get("title")
            file.channel = args.get("channel_id") or None
            file.thread_ts = args.get("thread_ts") or None
            file.initial_comment = args.get("initial_comment") or None
            completed.append({"id": file.id, "name": file.filename, "title": file.title})
        return {"files": completed}

    def _ts(self) -> str:
        n = next(self._counter)
        return f"{1_700_000_000 + n}.{n:06d}"


async def _arguments(request: web.Request) -> JSON:
    args: JSON = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return args
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            args.update(body)
    else:
        form = await request.post()
        args.update({k: v for k, v in form.items() if isinstance(v, str)})
    return args


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None


def _content(args: JSON) -> str | None:
    """The text of a post or update; ``"!error"`` when a limit is exceeded."""
    markdown = args.get("markdown_text")
    if markdown:
        return "!msg_too_long" if len(str(markdown)) > MARKDOWN_LIMIT else str(markdown)
    text = args.get("text")
    if text:
        return "!msg_too_long" if len(str(text)) > TEXT_LIMIT else str(text)
    if args.get("blocks"):
        return ""
    return None


def _stream_text(args: JSON) -> str | None:
    text = str(args.get("markdown_text") or "")
    chunks = args.get("chunks")
    if isinstance(chunks, str):
        chunks = json.loads(chunks)
    for chunk in chunks or []:
        if isinstance(chunk, dict) and chunk.get("type") == "markdown_text":
            text += str(chunk.get("text") or "")
    return None if len(text) > MARKDOWN_LIMIT else text


# -- signing and payloads ------------------------------------------------------------------------


def slack_signature(secret: str, timestamp: str, body: str) -> str:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256)
    return "v0=" + digest.hexdigest()


def signed_headers(
    secret: str,
    body: str,
    *,
    timestamp: int | None = None,
    content_type: str = "application/json",
    retry_num: int | None = None,
) -> dict[str, str]:
    """Headers Slack would send with ``body``: timestamp, ``v0=`` signature, retry info."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(secret, ts, body),
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return headers


_event_ids = itertools.count(1)


def event_callback(
    event: JSON, *, team_id: str = "T0001", event_id: str | None = None, api_app_id: str = "A0001"
) -> JSON:
    """The ``event_callback`` envelope of the Events API around ``event``."""
    return {
        "token": "legacy-verification-token",
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_event_ids):08d}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": team_id, "user_id": "UBOT", "is_bot": True}],
    }


def message_event(
    text: str,
    *,
    user: str = "U0001",
    channel: str = "D0001",
    channel_type: str = "im",
    ts: str | None = None,
    thread_ts: str | None = None,
    team: str = "T0001",
    **extra: Any,
) -> JSON:
    event: JSON = {
        "type": "message",
        "user": user,
        "text": text,
        "channel": channel,
        "channel_type": channel_type,
        "team": team,
        "ts": ts or f"{time.time():.6f}",
        "event_ts": ts or f"{time.time():.6f}",
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    event.update(extra)
    return event


def mention_event(
    text: str,
    *,
    user: str = "U0001",
    channel: str = "C0001",
    ts: str | None = None,
    thread_ts: str | None = None,
    team: str = "T0001",
    bot_user_id: str = "UBOT",
) -> JSON:
    event: JSON = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{bot_user_id}> {text}",
        "channel": channel,
        "team": team,
        "ts": ts or f"{time.time():.6f}",
        "event_ts": ts or f"{time.time():.6f}",
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event


def command_body(
    text: str,
    *,
    response_url: str,
    command: str = "/sb",
    team_id: str = "T0001",
    user_id: str = "U0001",
    user_name: str = "ada",
    channel_id: str = "D0001",
    trigger_id: str | None = None,
) -> str:
    """A slash command as Slack posts it (``application/x-www-form-urlencoded``)."""
    return urllib.parse.urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": team_id,
            "team_domain": "acme",
            "channel_id": channel_id,
            "channel_name": "directmessage" if channel_id.startswith("D") else "general",
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": "A0001",
            "response_url": response_url,
            "trigger_id": trigger_id or f"{next(_event_ids)}.{int(time.time())}.abcdef",
        }
    )
