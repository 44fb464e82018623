"""The Slack adapter end to end: signed requests to /slack/events on the real aiohttp app, Bolt,
the pipeline, the fake LLM, and a fake Slack Web API on 127.0.0.1 receiving our replies."""

from __future__ import annotations

import io
import json
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select

from bot.app import App
from bot.channels import build_channels, build_slack_channel
from bot.http import build_web_app
from bot.service import ServiceRunner
from core.envelope import OutboundFile
from core.errors import ConfigurationError
from handlers.slack import SlackChannel, SlackOptions, SlackSink, SlackTarget
from handlers.slack.events import from_command
from storage.models import ContentItem, Member, ProcessedUpdate, UsageEvent
from tests.conftest import AppFactory, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.slack_server import (
    FakeSlackServer,
    command_body,
    event_callback,
    mention_event,
    message_event,
    signed_headers,
    slack_signature,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ADMIN = "UADMIN"
FAST = SlackOptions(
    stream_interval=0.05, update_interval=0.2, max_rate_limit_wait=2, drain_timeout=10
)


@dataclass
class Harness:
    app: App
    slack: FakeSlackServer
    llm: FakeLLMServer
    channel: SlackChannel
    url: str
    http: aiohttp.ClientSession

    async def post(self, body: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        async with self.http.post(self.url, data=body.encode(), headers=headers) as resp:
            await resp.read()
            return resp

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        team_id: str = "T0001",
    ) -> int:
        body = json.dumps(event_callback(event, event_id=event_id, team_id=team_id))
        resp = await self.post(body, signed_headers(SECRET, body, retry_num=retry_num))
        await self.channel.drain(30)
        return resp.status

    async def command(
        self, text: str, *, user_id: str = "U0001", channel_id: str = "D0001", name: str = "cmd"
    ) -> str:
        body = command_body(
            text, response_url=self.slack.response_url(name), user_id=user_id, channel_id=channel_id
        )
        headers = signed_headers(SECRET, body, content_type="application/x-www-form-urlencoded")
        async with self.http.post(self.url, data=body.encode(), headers=headers) as resp:
            assert resp.status == 200
            assert await resp.text() == "", "the slash command is acknowledged empty, at once"
        await self.channel.drain(30)
        answers = [r["text"] for r in self.slack.responses if r["url_name"] == name]
        assert answers, f"no response_url answer to {text!r}: {self.slack.calls}"
        return "\n".join(answers)

    async def join(self) -> None:
        code = await tenant_with_tokens(self.app)
        assert "Welcome" in await self.command(f"join {code}", name="join")


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackServer]:
    server = FakeSlackServer()
    server.users.update({"U0001": "Ada", ADMIN: "Grace"})
    await server.start()
    yield server
    await server.stop()


def slack_env(slack: FakeSlackServer, **extra: str) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_BASE": slack.api_base,
        "SUPERADMINS": f"slack:T0001/{ADMIN}",
        **extra,
    }


@asynccontextmanager
async def served(app: App, slack: FakeSlackServer, llm: FakeLLMServer) -> AsyncIterator[Harness]:
    """The Slack channel of ``app`` behind its own aiohttp server, as ``switchboard run`` has it."""
    channel = build_slack_channel(app.settings, app.pipeline, app.registry, options=FAST)
    web_app = build_web_app(app.deps)
    channel.install_routes(web_app)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await channel.start()
    try:
        async with aiohttp.ClientSession() as http:
            yield Harness(app, slack, llm, channel, f"http://127.0.0.1:{port}/slack/events", http)
    finally:
        await channel.stop()
        await runner.cleanup()


@pytest.fixture
async def h(
    make_app: AppFactory, slack: FakeSlackServer, llm: FakeLLMServer
) -> AsyncIterator[Harness]:
    app = await make_app(**slack_env(slack))
    llm.delay = 0.02
    async with served(app, slack, llm) as harness:
        yield harness


async def count(app: App, model: type) -> int:
    async with app.deps.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


# -- identity, commands ----------------------------------------------------------------------------


async def test_join_binds_workspace_then_dm_streams_in_thread(h: Harness) -> None:
    await h.join()
    h.llm.reply_text = "Paris is the capital of France, and a lovely city in spring."

    assert await h.event(message_event("Capital of France?", ts="1700000100.000100")) == 200

    starts = h.slack.calls_to("chat.startStream", ok_only=True)
    assert len(starts) == 1 and starts[0].args["thread_ts"] == "1700000100.000100"
    assert h.slack.calls_to("chat.appendStream", ok_only=True), "the reply streams in steps"
    assert len(h.slack.calls_to("chat.stopStream", ok_only=True)) == 1
    [reply] = h.slack.thread("D0001", "1700000100.000100")
    assert reply.text == h.llm.reply_text and not reply.streaming
    assert "Capital of France?" in str(h.llm.last_request.json["input"])
    async with h.app.deps.sessions() as session:
        item = (await session.execute(select(ContentItem))).scalar_one()
        member = (await session.execute(select(Member))).scalar_one()
    assert item.text == h.llm.reply_text
    assert (member.channel, member.external_id, member.display_name) == (
        "slack",
        "T0001/U0001",
        "Ada",
    )
    assert await count(h.app, UsageEvent) == 1


async def test_mention_in_channel_answers_in_its_thread(h: Harness) -> None:
    await h.join()
    h.llm.reply_text = "Here is the summary."

    await h.event(
        mention_event(
            "summarise the thread",
            channel="C0001",
            ts="1700000200.000200",
            thread_ts="1700000150.000150",
        )
    )

    [start] = h.slack.calls_to("chat.startStream", ok_only=True)
    assert start.args["thread_ts"] == "1700000150.000150"
    assert (start.args["recipient_team_id"], start.args["recipient_user_id"]) == ("T0001", "U0001")
    [reply] = h.slack.thread("C0001", "1700000150.000150")
    assert reply.text == "Here is the summary."
    sent = str(h.llm.last_request.json["input"])
    assert "summarise the thread" in sent and "<@UBOT>" not in sent


async def test_help_answers_through_response_url(h: Harness) -> None:
    text = await h.command("help")
    assert "/sb help" in text and "/sb join CODE" in text
    assert "/tenant" not in text, "a member does not see admin commands"
    assert h.slack.responses[0]["response_type"] == "ephemeral"
    assert h.slack.responses[0]["mrkdwn"] is False, "codes and slugs are shown as typed"
    assert not h.slack.calls_to("chat.postMessage")
    assert not h.llm.requests


async def test_tenant_create_needs_an_admin(h: Harness) -> None:
    await h.join()
    refused = await h.command("tenant create beta --name Beta", name="member")
    assert "Permission denied: /sb tenant create needs the admin role." in refused

    created = await h.command("tenant create beta --name Beta", user_id=ADMIN, name="admin")
    assert "beta" in created.lower() and "invite" in created.lower()


async def test_unbound_workspace_gets_the_explanation_and_no_llm_call(h: Harness) -> None:
    await h.event(message_event("hello?", ts="1700000300.000300"))

    [note] = h.slack.thread("D0001", "1700000300.000300")
    assert "not linked" in note.text and "/sb start CODE" in note.text
    assert not h.llm.requests
    assert not h.slack.calls_to("chat.startStream")


async def test_wrong_arguments_answer_the_generated_usage_line(h: Harness) -> None:
    await h.join()
    text = await h.command("tokens grant acme lots", user_id=ADMIN, name="admin")
    usage = {c.name: c.usage for c in h.app.registry}["tokens grant"]
    assert text.splitlines()[-1] == "Usage: /sb " + usage.removeprefix("/")


async def test_two_messages_in_one_thread_are_answered_in_order(h: Harness) -> None:
    """Slack acknowledges events at once and handles them in the background; the pipeline keeps
    one thread's messages in arrival order even when the first answer is the slow one."""
    await h.join()
    h.llm.pause_fn = lambda body: 0.4 if str(body).count("first") == 1 else 0.0
    h.llm.reply_fn = lambda body: "re: " + ("second" if "second" in str(body) else "first")
    root = "1700000500.000500"
    for text, ts in (("first", "1700000501.000501"), ("second", "1700000502.000502")):
        body = json.dumps(event_callback(message_event(text, ts=ts, thread_ts=root)))
        response = await h.post(body, signed_headers(SECRET, body))
        assert response.status == 200
    await h.channel.drain(30)

    assert [m.text for m in h.slack.thread("D0001", root)] == ["re: first", "re: second"]
    assert "first" in str(h.llm.last_request.json["input"]), "the second saw the first"


async def test_stats_chart_is_uploaded_as_an_image(h: Harness) -> None:
    await h.join()
    await h.event(message_event("hello", ts="1700000600.000600"))
    text = await h.command("stats", user_id=ADMIN, name="stats")
    assert "Tokens in / out" in text
    [chart] = [f for f in h.slack.files.values() if f.filename == "stats.png"]
    image = Image.open(io.BytesIO(chart.data))
    assert image.format == "PNG" and image.size == (900, 480)


# -- transport -------------------------------------------------------------------------------------


async def test_forged_and_stale_requests_get_401_and_no_turn(h: Harness) -> None:
    await h.join()
    body = json.dumps(event_callback(message_event("forged")))
    forged = await h.post(body, signed_headers("not-the-secret", body))
    stale = await h.post(body, signed_headers(SECRET, body, timestamp=1_600_000_000))
    tampered = signed_headers(SECRET, body)
    bad_body = await h.post(body.replace("forged", "tampered"), tampered)
    await h.channel.drain(30)

    assert (forged.status, stale.status, bad_body.status) == (401, 401, 401)
    assert not h.llm.requests
    assert not h.slack.calls_to("chat.startStream")


FORM = "application/x-www-form-urlencoded"
NOT_JSON = "{not json"
BAD_PAYLOAD = urllib.parse.urlencode({"payload": NOT_JSON})
#: Signed, valid JSON, but not in a shape Slack sends: Bolt cannot match them to a listener.
ODD_EVENT = '{"type": "event_callback", "event": "x"}'
ODD_ACTION = '{"type": "block_actions", "actions": "x"}'


def unsigned(content_type: str = "application/json", **extra: str) -> dict[str, str]:
    return {"Content-Type": content_type, **extra}


def bad_timestamp(body: str) -> dict[str, str]:
    """Headers signed over a timestamp that is not a number (the HMAC itself is right)."""
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": "soon",
        "X-Slack-Signature": slack_signature(SECRET, "soon", body),
    }


def deeply_nested(depth: int) -> str:
    return '{"type": "event_callback", "event": ' + "[" * depth + "]" * depth + "}"


def malformed() -> list[tuple[str, bytes, dict[str, str], int]]:
    """Built when the test runs: signatures carry a timestamp that Slack (and Bolt) accept for
    five minutes only, and a long suite can take longer than that to reach this test."""
    return [
        ("unsigned body that is not JSON", NOT_JSON.encode(), unsigned(), 401),
        ("unsigned payload that is not JSON", BAD_PAYLOAD.encode(), unsigned(FORM), 401),
        ("no headers at all", b"{}", {}, 401),
        (
            "forged signature on a body that is not JSON",
            NOT_JSON.encode(),
            signed_headers("not-the-secret", NOT_JSON),
            401,
        ),
        (
            "timestamp without a signature",
            b"{}",
            unsigned(**{"X-Slack-Request-Timestamp": "1"}),
            401,
        ),
        ("non-numeric timestamp", b"{}", bad_timestamp("{}"), 401),
        ("body that is not UTF-8", b"\xff\xfe{}", unsigned(), 401),
        ("signed body that is not JSON", NOT_JSON.encode(), signed_headers(SECRET, NOT_JSON), 400),
        (
            "signed payload that is not JSON",
            BAD_PAYLOAD.encode(),
            signed_headers(SECRET, BAD_PAYLOAD, content_type=FORM),
            400,
        ),
        ("signed JSON that is not an object", b"[1, 2]", signed_headers(SECRET, "[1, 2]"), 400),
        (
            "signed event that is not an object",
            ODD_EVENT.encode(),
            signed_headers(SECRET, ODD_EVENT),
            400,
        ),
        (
            "signed actions that are not a list",
            ODD_ACTION.encode(),
            signed_headers(SECRET, ODD_ACTION),
            400,
        ),
        (
            "signed JSON nested deeper than the parser goes",
            deeply_nested(100_000).encode(),
            signed_headers(SECRET, deeply_nested(100_000)),
            400,
        ),
    ]


async def test_malformed_requests_get_400_or_401_and_run_nothing(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever is posted, the answer is 401 (signature cannot be verified) or 400 (signed but
    unreadable): never a 500, never a traceback in the logs, never a turn."""
    await h.join()
    h.slack.calls.clear()
    caplog.set_level(logging.INFO)

    cases = malformed()
    statuses = {}
    for name, body, headers, _ in cases:
        async with h.http.post(h.url, data=body, headers=headers) as resp:
            statuses[name] = resp.status
    await h.channel.drain(30)

    assert statuses == {name: status for name, _, _, status in cases}
    assert not h.llm.requests
    assert not h.slack.calls, "nothing was answered in Slack"
    assert await count(h.app, ProcessedUpdate) == 1, "only the join command was ever handled"
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    refusals = [r for r in caplog.records if "Slack request refused" in r.getMessage()]
    assert len(refusals) == len(cases)


async def test_replayed_slash_command_without_trigger_id_runs_once_across_processes(
    h: Harness, make_app: AppFactory
) -> None:
    """The same signed request posted three times, to two processes, is one command; a new
    request with the same text (Slack signs it with a new timestamp) is another."""
    fields = dict(urllib.parse.parse_qsl(command_body("help", response_url=h.slack.response_url())))
    del fields["trigger_id"]
    body = urllib.parse.urlencode(fields)
    headers = signed_headers(SECRET, body, content_type=FORM)
    other = await make_app(**slack_env(h.slack))  # a second process on the same database

    async with served(other, h.slack, h.llm) as second:
        for url in (h.url, h.url, second.url):
            async with h.http.post(url, data=body.encode(), headers=headers) as resp:
                assert resp.status == 200
        await h.channel.drain(30)
        await second.channel.drain(30)
    assert len(h.slack.responses) == 1

    later = signed_headers(SECRET, body, content_type=FORM, timestamp=int(time.time()) + 1)
    async with h.http.post(h.url, data=body.encode(), headers=later) as resp:
        assert resp.status == 200
    await h.channel.drain(30)
    assert len(h.slack.responses) == 2


async def test_retried_event_gives_one_turn(h: Harness) -> None:
    await h.join()
    event = message_event("count me once", ts="1700000400.000400")

    await h.event(event, event_id="Ev0RETRY")
    await h.event(event, event_id="Ev0RETRY", retry_num=1)
    await h.event(event, event_id="Ev0RETRY", retry_num=2)

    assert len(h.llm.requests) == 1
    assert await count(h.app, UsageEvent) == 1
    assert len(h.slack.thread("D0001", "1700000400.000400")) == 1


async def test_url_verification_and_ignored_events(h: Harness) -> None:
    body = json.dumps({"token": "t", "challenge": "abc123", "type": "url_verification"})
    async with h.http.post(h.url, data=body, headers=signed_headers(SECRET, body)) as resp:
        assert resp.status == 200 and "abc123" in await resp.text()
    await h.join()

    ignored = [
        message_event("from a bot", bot_id="B0002", subtype="bot_message"),
        message_event("edited", subtype="message_changed"),
        message_event("my own", user="UBOT"),
        message_event("channel chatter", channel="C0001", channel_type="channel"),
        {"type": "reaction_added", "user": "U0001", "reaction": "tada"},
    ]
    for event in ignored:
        assert await h.event(event) == 200
    assert not h.llm.requests

    action = urllib.parse.urlencode(
        {
            "payload": json.dumps(
                {
                    "type": "block_actions",
                    "team": {"id": "T0001"},
                    "user": {"id": "U0001"},
                    "actions": [{"action_id": "noop", "type": "button"}],
                    "trigger_id": "1.2.3",
                }
            )
        }
    )
    form = signed_headers(SECRET, action, content_type="application/x-www-form-urlencoded")
    assert (await h.post(action, form)).status == 200


# -- replies ---------------------------------------------------------------------------------------


async def test_stream_api_missing_falls_back_to_post_and_update(h: Harness) -> None:
    await h.join()
    h.slack.streaming_supported = False
    h.llm.reply_text = " ".join(f"word{i}" for i in range(24))
    h.llm.delay = 0.03

    await h.event(message_event("talk", ts="1700000500.000500"))

    [reply] = h.slack.thread("D0001", "1700000500.000500")
    assert reply.text == h.llm.reply_text and reply.via == "chat.postMessage"
    assert reply.edits >= 2, "the draft is edited as the answer grows"
    assert len(h.slack.calls_to("chat.startStream")) == 1, "tried once, then remembered"

    await h.event(message_event("again", ts="1700000600.000600"))
    assert len(h.slack.calls_to("chat.startStream")) == 1


async def test_a_stream_lost_mid_reply_is_finished_with_an_edit(h: Harness) -> None:
    await h.join()
    h.llm.reply_text = "One two three four five six seven eight nine ten."
    h.slack.fail("chat.appendStream", "message_not_in_streaming_state")

    await h.event(message_event("count", ts="1700000650.000650"))

    [reply] = h.slack.thread("D0001", "1700000650.000650")
    assert reply.text == h.llm.reply_text and reply.via == "chat.startStream"
    assert h.slack.calls_to("chat.update", ok_only=True)
    await h.event(message_event("and again", ts="1700000660.000660"))
    assert len(h.slack.calls_to("chat.startStream")) == 2, "one lost stream does not stop streaming"


async def test_rate_limits_are_honoured_without_losing_the_answer(h: Harness) -> None:
    await h.join()
    h.llm.reply_text = "A patient answer that survives rate limits."
    h.slack.rate_limit("chat.appendStream", retry_after=1, count=2)
    h.slack.rate_limit("chat.stopStream", retry_after=1)

    await h.event(message_event("go", ts="1700000700.000700"))

    [reply] = h.slack.thread("D0001", "1700000700.000700")
    assert reply.text == h.llm.reply_text and not reply.streaming
    assert [c.status for c in h.slack.calls_to("chat.stopStream")] == [429, 200]


async def test_rate_limited_updates_in_fallback_mode(h: Harness) -> None:
    await h.join()
    h.slack.streaming_supported = False
    h.llm.reply_text = " ".join(f"w{i}" for i in range(30))
    h.slack.rate_limit("chat.update", retry_after=1, count=2)

    await h.event(message_event("go", ts="1700000800.000800"))

    [reply] = h.slack.thread("D0001", "1700000800.000800")
    assert reply.text == h.llm.reply_text
    assert any(c.status == 429 for c in h.slack.calls_to("chat.update"))


async def test_dm_with_a_text_file(h: Harness) -> None:
    await h.join()
    url = h.slack.add_file("notes.txt", b"Quarterly revenue grew 12 percent.", "text/plain")
    event = message_event(
        "summarise",
        ts="1700000900.000900",
        subtype="file_share",
        files=[
            {
                "id": "F1",
                "name": "notes.txt",
                "mimetype": "text/plain",
                "size": 34,
                "url_private_download": url,
            }
        ],
    )
    await h.event(event)

    assert "Quarterly revenue grew" in str(h.llm.last_request.json["input"])


# -- the sink on its own ---------------------------------------------------------------------------


def sink_for(
    slack: FakeSlackServer,
    options: SlackOptions = FAST,
    *,
    thread_ts: str | None = "1700001000.000100",
    response_url: str | None = None,
) -> SlackSink:
    client = AsyncWebClient(token=slack.token, base_url=slack.api_base)
    target = SlackTarget(
        channel_id="C0001",
        team_id="T0001",
        user_id="U0001",
        thread_ts=thread_ts,
        response_url=response_url,
    )
    return SlackSink(client, target, options)


async def test_send_file_uses_files_upload_v2(slack: FakeSlackServer) -> None:
    sink = sink_for(slack)
    data = b"month,tokens\n2025-01,1200\n"
    await sink.send_file(OutboundFile("usage.csv", data, "text/csv", caption="Usage export"))

    assert slack.methods() == ["files.getUploadURLExternal", "files.completeUploadExternal"]
    [file] = slack.files.values()
    assert (file.filename, file.data, file.channel, file.thread_ts, file.initial_comment) == (
        "usage.csv",
        data,
        "C0001",
        "1700001000.000100",
        "Usage export",
    )


async def test_long_replies_split_at_the_limits(slack: FakeSlackServer) -> None:
    paragraphs = [f"Paragraph {i}: " + "lorem ipsum " * 8 for i in range(6)]
    code = "```python\n" + "\n".join(f"print({i})" for i in range(30)) + "\n```"
    answer = "\n\n".join([*paragraphs, code, "The end."])

    for streaming in (True, False):
        slack.messages.clear()
        slack.streaming_supported = streaming
        options = SlackOptions(
            stream_interval=0, update_interval=0, stream_message_limit=200, message_limit=160
        )
        stream = sink_for(slack, options).open_stream()
        for i in range(0, len(answer), 7):
            await stream.append(answer[i : i + 7])
        await stream.finish(answer)

        parts = slack.thread("C0001", "1700001000.000100")
        limit = 200 if streaming else 160
        assert len(parts) > 3 and all(len(p.text) <= limit for p in parts)
        assert all(p.text.count("```") % 2 == 0 for p in parts), "code blocks stay closed"
        joined = "".join(p.text for p in parts)
        for fragment in ("Paragraph 5", "print(29)", "The end."):
            assert fragment in joined
        assert not any(p.streaming for p in parts)


async def test_abort_replaces_the_partial_answer(slack: FakeSlackServer) -> None:
    stream = sink_for(slack).open_stream()
    await stream.append("Half an ans")
    await stream.abort("The assistant is not available right now.")

    [message] = slack.thread("C0001", "1700001000.000100")
    assert message.text == "The assistant is not available right now."


async def test_response_url_failure_falls_back_to_a_post(slack: FakeSlackServer) -> None:
    sink = sink_for(slack, thread_ts=None, response_url=slack.base_url + "/missing")
    await sink.send_text("Use /help & see <this>")

    [post] = slack.calls_to("chat.postMessage")
    assert post.args["text"] == "Use /help &amp; see &lt;this&gt;"
    assert post.args["mrkdwn"] is False


# -- wiring ----------------------------------------------------------------------------------------


async def test_socket_mode_is_built_from_the_app_token(
    make_app: AppFactory, slack: FakeSlackServer
) -> None:
    app = await make_app(
        SLACK_BOT_TOKEN=slack.token, SLACK_APP_TOKEN="xapp-1-test", SLACK_API_BASE=slack.api_base
    )
    channel = build_slack_channel(app.settings, app.pipeline, app.registry)
    web_app = build_web_app(app.deps)
    channel.install_routes(web_app)

    assert channel.socket_mode and not channel.http_events
    assert not [
        r for r in web_app.router.routes() if r.resource and r.resource.canonical == "/slack/events"
    ]
    assert channel.client.base_url == slack.api_base


async def test_socket_mode_end_to_end(
    make_app: AppFactory, slack: FakeSlackServer, llm: FakeLLMServer
) -> None:
    app = await make_app(
        SLACK_BOT_TOKEN=slack.token, SLACK_APP_TOKEN=slack.app_token, SLACK_API_BASE=slack.api_base
    )
    code = await tenant_with_tokens(app)
    channel = build_slack_channel(app.settings, app.pipeline, app.registry, options=FAST)
    await channel.start()
    try:
        command = dict(
            urllib.parse.parse_qsl(
                command_body(f"join {code}", response_url=slack.response_url("join"))
            )
        )
        await slack.socket_ack(await slack.socket_send("slash_commands", command))
        await channel.drain(30)
        event = event_callback(message_event("over the socket", ts="1700003000.000100"))
        await slack.socket_ack(await slack.socket_send("events_api", event))
        await channel.drain(30)
    finally:
        await channel.stop()
    assert "Welcome" in slack.responses[0]["text"]
    [reply] = slack.thread("D0001", "1700003000.000100")
    assert reply.text == llm.reply_text


async def test_refused_tokens_stop_the_start(make_app: AppFactory, slack: FakeSlackServer) -> None:
    for env in (
        {"SLACK_BOT_TOKEN": "xoxb-wrong", "SLACK_SIGNING_SECRET": SECRET},
        {"SLACK_BOT_TOKEN": slack.token, "SLACK_APP_TOKEN": "xapp-wrong"},
    ):
        app = await make_app(SLACK_API_BASE=slack.api_base, **env)
        channel = build_slack_channel(app.settings, app.pipeline, app.registry)
        with pytest.raises(ConfigurationError, match="refused by Slack"):
            await channel.start()
        await channel.stop()


async def test_stop_lets_running_turns_finish_then_refuses_new_ones(h: Harness) -> None:
    await h.join()
    h.llm.delay = 0.05
    body = json.dumps(event_callback(message_event("long one", ts="1700004000.000100")))
    assert (await h.post(body, signed_headers(SECRET, body))).status == 200

    await h.channel.stop()

    [reply] = h.slack.thread("D0001", "1700004000.000100")
    assert reply.text == h.llm.reply_text and not reply.streaming
    late = json.dumps(event_callback(message_event("too late")))
    assert (await h.post(late, signed_headers(SECRET, late))).status == 503


def test_manifest_matches_the_adapter() -> None:
    manifest = (Path(__file__).parent.parent / "slack" / "manifest.yml").read_text()
    for needed in (
        "app_mentions:read",
        "chat:write",
        "im:history",
        "im:read",
        "im:write",
        "commands",
        "files:write",
        "users:read",
        "- app_mention",
        "- message.im",
        "command: /sb",
        "https://YOUR_HOST/slack/events",
        "socket_mode_enabled:",
    ):
        assert needed in manifest, needed


async def test_switchboard_run_answers_a_signed_dm(
    make_app: AppFactory, slack: FakeSlackServer, llm: FakeLLMServer
) -> None:
    app = await make_app(**slack_env(slack, HTTP_PORT="0"))
    code = await tenant_with_tokens(app)
    service = ServiceRunner(app, build_channels(app.settings, app.deps, app.pipeline, app.registry))
    await service.start()
    try:
        url = f"http://127.0.0.1:{service.port}/slack/events"
        [channel] = service.channels
        assert isinstance(channel, SlackChannel)
        join = command_body(f"join {code}", response_url=slack.response_url("join"))
        dm = json.dumps(event_callback(message_event("hi", ts="1700002000.000100")))
        async with aiohttp.ClientSession() as http:
            form = "application/x-www-form-urlencoded"
            async with http.post(
                url, data=join, headers=signed_headers(SECRET, join, content_type=form)
            ) as resp:
                assert resp.status == 200
            await channel.drain(30)
            async with http.post(url, data=dm, headers=signed_headers(SECRET, dm)) as resp:
                assert resp.status == 200
            await channel.drain(30)
    finally:
        await service.stop()
    [reply] = slack.thread("D0001", "1700002000.000100")
    assert reply.text == llm.reply_text


def test_an_overlong_slack_id_still_fits_the_dedup_key() -> None:
    """``processed_updates.update_key`` holds 200 characters (PostgreSQL enforces it): a longer
    id is hashed, the same way every time; ordinary ids stay as they are."""
    fields = dict(urllib.parse.parse_qsl(command_body("help", response_url="http://x/r")))
    keys = []
    for trigger in ("12345.98765.abcdef", "t" * 300, "t" * 300, "u" * 300):
        inbound = from_command({**fields, "trigger_id": trigger}, now=lambda: datetime.now(UTC))
        assert inbound is not None
        keys.append(inbound.message.update_key)
    assert keys[0] == "12345.98765.abcdef"
    assert keys[1] == keys[2] != keys[3]
    assert all(key is not None and len(key) <= 200 for key in keys)
