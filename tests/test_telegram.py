"""The Telegram channel end to end: the real adapter, wired by ``bot.service``, talking HTTP to a
fake Bot API server (tests/fakes/telegram_server.py) and a fake LLM, in polling and webhook mode.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiogram.types import Message
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import func, select

from bot.app import App
from bot.channels import build_channels
from bot.service import ServiceRunner
from core.envelope import InboundMessage, OutboundFile
from handlers.middlewares import UNBOUND_EXPLANATION
from handlers.telegram import TelegramChannel
from handlers.telegram.adapter import BotIdentity, to_envelope
from handlers.telegram.channel import SECRET_HEADER, WEBHOOK_PATH, api_server
from handlers.telegram.delivery import ChatTarget, Delivery, Pacing
from handlers.telegram.formatting import markdown_to_html, render_markdown, utf16_len
from handlers.telegram.sink import TelegramSink
from storage.models import ContentItem, ProcessedUpdate, UsageEvent
from tests.conftest import AppFactory, admin, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.telegram_server import ApiCall, FakeTelegramServer, parse_html

USER = 424242
OTHER_USER = 515151
ADMIN_ID = 111000
GROUP = -1001234567890
SECRET = "s3cret-token_for_tests"


@dataclass
class Running:
    app: App
    service: ServiceRunner
    channel: TelegramChannel
    fake: FakeTelegramServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.service.port}"


Start = Callable[..., Awaitable[Running]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegramServer]:
    async with FakeTelegramServer() as server:
        yield server


@pytest.fixture
async def start(make_app: AppFactory, telegram: FakeTelegramServer) -> AsyncIterator[Start]:
    """``await start(mode, **env)``: ``switchboard run``'s service with the Telegram channel."""
    running: list[ServiceRunner] = []

    async def factory(
        mode: str = "polling", fake: FakeTelegramServer | None = None, **env: str
    ) -> Running:
        fake = fake or telegram
        environ = {
            "TELEGRAM_BOT_TOKEN": fake.token,
            "TELEGRAM_API_BASE": fake.base_url,
            "TELEGRAM_MODE": mode,
            "HTTP_PORT": "0",
        }
        if mode == "webhook":
            port = free_port()
            environ.update(
                HTTP_PORT=str(port),
                TELEGRAM_WEBHOOK_SECRET=SECRET,
                PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
            )
        environ.update(env)
        app = await make_app(**environ)
        service = ServiceRunner(
            app, build_channels(app.settings, app.deps, app.pipeline, app.registry)
        )
        await service.start()
        running.append(service)
        channel = service.channels[0]
        assert isinstance(channel, TelegramChannel)
        return Running(app, service, channel, fake)

    yield factory
    for service in running:
        await service.stop()


async def bind_private(run: Running, user: int = USER, slug: str = "acme") -> None:
    code = await tenant_with_tokens(run.app, slug)
    await run.fake.send_update(run.fake.private_message(user, f"/start {code}"))
    await run.fake.wait_for_bot_messages(user)
    assert run.fake.bot_texts(user)[-1].startswith("Welcome!")


async def count(app: App, model: type[Any]) -> int:
    async with app.deps.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


def normalized(text: str) -> str:
    return " ".join(text.split())


def gaps(calls: list[ApiCall]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(calls)]


# -- polling mode -----------------------------------------------------------------------------


async def test_private_chat_binds_and_streams_drafts_then_one_message(
    start: Start, llm: FakeLLMServer
) -> None:
    run = await start()
    fake = run.fake
    assert fake.calls_to("getMe") and fake.calls_to("deleteWebhook")
    assert run.app.deps.bot_usernames["telegram"] == fake.username
    created = await admin(run.app, "tenant", "create", "beta", "--name", "Beta")
    assert f"https://t.me/{fake.username}?start=" in created.text

    await bind_private(run)
    llm.reply_text = "Streaming works: **drafts** first, then one final message for you."
    llm.chunk_size, llm.delay = 6, 0.06
    await fake.send_update(fake.private_message(USER, "Hello there"))
    messages = await fake.wait_for_bot_messages(USER, 2)

    assert messages[-1].text == "Streaming works: drafts first, then one final message for you."
    final = fake.calls_to("sendMessage", chat_id=USER)[-1]
    assert final.params["parse_mode"] == "HTML" and "<b>drafts</b>" in final.params["text"]
    drafts = fake.calls_to("sendMessageDraft", chat_id=USER)
    assert len(drafts) >= 2
    assert len({d.params["draft_id"] for d in drafts}) == 1
    assert all(gap >= 0.38 for gap in gaps(drafts))
    assert drafts[-1].at < final.at
    assert not fake.calls_to("sendChatAction", chat_id=USER), "words came first: no typing"
    assert await count(run.app, ContentItem) == 1
    assert await count(run.app, UsageEvent) == 1
    assert "Hello there" in str(llm.last_request.json)


async def test_a_model_that_thinks_shows_typing_before_its_first_words(
    start: Start, llm: FakeLLMServer
) -> None:
    run = await start()
    fake = run.fake
    await bind_private(run)
    llm.pause_fn = lambda _body: 1.0  # longer than Pacing.typing_after
    await fake.send_update(fake.private_message(USER, "think first"))
    await fake.wait_for_bot_messages(USER, 2)

    typing = fake.calls_to("sendChatAction", chat_id=USER)
    first_words = fake.calls_to("sendMessageDraft", chat_id=USER) or fake.calls_to(
        "sendMessage", chat_id=USER
    )
    assert [c.params["action"] for c in typing] == ["typing"]
    assert typing[0].at < first_words[0].at


async def test_a_refusal_is_not_followed_by_typing(start: Start, llm: FakeLLMServer) -> None:
    """Typing waits for a quiet moment; a refusal sent meanwhile (no tokens left) cancels it,
    or "typing…" would run on under the refusal."""
    run = await start()
    fake = run.fake
    await bind_private(run)
    await admin(run.app, "tokens", "adjust", "acme", "-100000", "spent")
    await fake.send_update(fake.private_message(USER, "anything?"))
    await fake.wait_for_bot_messages(USER, 2)
    await asyncio.sleep(Pacing().typing_after + 0.3)

    assert "token" in (fake.bot_texts(USER)[-1] or "").lower(), "refused for want of tokens"
    assert not fake.calls_to("sendChatAction", chat_id=USER)
    assert llm.requests == []


async def test_group_binding_mentions_replies_and_paced_edits(
    start: Start, llm: FakeLLMServer
) -> None:
    run = await start()
    fake = run.fake
    code = await tenant_with_tokens(run.app)
    await fake.send_update(fake.group_message(GROUP, USER, f"/start@{fake.username} {code}"))
    welcome = await fake.wait_for_bot_messages(GROUP)
    assert welcome[0].text is not None and "this group is now linked" in welcome[0].text.lower()

    chatter = fake.group_message(GROUP, OTHER_USER, "lunch anyone?")
    await fake.send_update(chatter)
    words = " ".join(f"word{i}" for i in range(60))
    llm.reply_text, llm.chunk_size, llm.delay = words, 16, 0.1
    await fake.send_update(
        fake.group_message(GROUP, OTHER_USER, f"@{fake.username} write sixty words")
    )
    await fake.wait_for(lambda: fake.bot_texts(GROUP)[-1:] == [words], within=30)

    sends = fake.calls_to("sendMessage", chat_id=GROUP)
    edits = fake.calls_to("editMessageText", chat_id=GROUP)
    assert len(sends) == 2  # the welcome, then the answer posted once
    assert sends[-1].params["reply_parameters"]["message_id"] > 0
    assert 1 <= len(edits) <= 3
    assert all(gap >= 1.45 for gap in gaps([sends[-1], *edits]))
    assert "write sixty words" in str(llm.last_request.json)
    assert f"@{fake.username}" not in str(llm.last_request.json)
    async with run.app.deps.sessions() as session:
        keys = set((await session.execute(select(ProcessedUpdate.update_key))).scalars())
    assert str(chatter["update_id"]) not in keys  # ignored without touching the database

    llm.delay = 0
    llm.reply_text = "Glad to help again."
    answer = fake.chat_messages(GROUP)[-1]
    await fake.send_update(fake.group_message(GROUP, USER, "and one more thing", reply_to=answer))
    await fake.wait_for(lambda: fake.bot_texts(GROUP)[-1:] == ["Glad to help again."])
    assert len(llm.requests) == 2


async def test_flood_control_mid_stream_delays_but_loses_nothing(
    start: Start, llm: FakeLLMServer
) -> None:
    run = await start()
    fake = run.fake
    await bind_private(run)
    reply = "One two three four five six seven eight nine ten eleven twelve."
    llm.reply_text, llm.chunk_size, llm.delay = reply, 8, 0.08
    fake.fail_next("sendMessageDraft", 429, retry_after=1, after=1)
    fake.fail_next("sendMessage", 429, retry_after=1)
    await fake.send_update(fake.private_message(USER, "count please"))
    await fake.wait_for(lambda: fake.bot_texts(USER)[-1:] == [reply], within=30)

    answers = [
        c
        for c in fake.calls_to("sendMessage", chat_id=USER, ok_only=False)
        if "One two" in str(c.params.get("text"))
    ]
    assert [c.status for c in answers] == [429, 200]
    assert answers[1].at - answers[0].at >= 0.95
    assert fake.bot_texts(USER).count(reply) == 1
    drafts = fake.calls_to("sendMessageDraft", chat_id=USER, ok_only=False)
    assert 429 in [d.status for d in drafts]

    # Groups: a 429 on an edit postpones it; the final edit still lands, once.
    code = await tenant_with_tokens(run.app, "globex")
    await fake.send_update(fake.group_message(GROUP, USER, f"/start {code}"))
    await fake.wait_for_bot_messages(GROUP)
    fake.fail_next("editMessageText", 429, retry_after=1)
    llm.delay = 0.15
    await fake.send_update(fake.group_message(GROUP, USER, f"@{fake.username} count"))
    await fake.wait_for(lambda: fake.bot_texts(GROUP)[-1:] == [reply], within=30)
    assert len(fake.chat_messages(GROUP)) == 2
    edits = fake.calls_to("editMessageText", chat_id=GROUP, ok_only=False)
    assert edits[0].status == 429 and edits[-1].status == 200


async def test_long_reply_is_split_into_valid_messages(start: Start, llm: FakeLLMServer) -> None:
    run = await start()
    fake = run.fake
    await bind_private(run)
    # ~9,000 characters in ~800 words (the fake model stops at max_output_tokens words).
    paragraph = (
        "Extraordinarily comprehensive documentation accompanies **remarkable "
        "implementations** consistently. " * 8
    ).strip()
    code = "```python\n" + "\n".join(f"value_{i} = {i} < {i + 1}" for i in range(20)) + "\n```"
    reply = "\n\n".join([paragraph] * 7 + [code] + [paragraph] * 4)
    llm.reply_text, llm.chunk_size = reply, 4000
    await fake.send_update(fake.private_message(USER, "write a long essay"))
    await fake.wait_for(lambda: len(fake.bot_texts(USER)) >= 4, within=30)

    sends = fake.calls_to("sendMessage", chat_id=USER)[1:]
    assert len(sends) >= 3
    assert all(c.params["parse_mode"] == "HTML" for c in sends)
    texts = fake.bot_texts(USER)[1:]
    assert all(len(t) <= 4096 for t in texts)
    expected = reply.replace("**", "").replace("```python", "").replace("```", "")
    assert normalized(" ".join(texts)) == normalized(expected)
    assert all(t.rstrip()[-1] in ".0123456789" for t in texts[:-1])  # cut at boundaries
    assert fake.calls_to("sendMessage", ok_only=False) == fake.calls_to("sendMessage")


async def test_rejected_markup_falls_back_to_plain_text(start: Start, llm: FakeLLMServer) -> None:
    run = await start()
    fake = run.fake
    await bind_private(run)
    llm.reply_text = "Some **bold** words."
    fake.fail_next(
        "sendMessage",
        400,
        description="Bad Request: can't parse entities: "
        'Unsupported start tag "b" at byte offset 5',
    )
    await fake.send_update(fake.private_message(USER, "format something"))
    await fake.wait_for(lambda: fake.bot_texts(USER)[-1:] == ["Some bold words."])
    tries = fake.calls_to("sendMessage", chat_id=USER, ok_only=False)[-2:]
    assert [c.status for c in tries] == [400, 200]
    assert tries[0].params["parse_mode"] == "HTML" and "parse_mode" not in tries[1].params


async def test_unbound_chat_gets_the_explanation_and_no_llm_call(
    start: Start, llm: FakeLLMServer
) -> None:
    run = await start()
    fake = run.fake
    await fake.send_update(fake.private_message(OTHER_USER, "hi, who are you?"))
    messages = await fake.wait_for_bot_messages(OTHER_USER)
    assert messages[0].text == UNBOUND_EXPLANATION
    await fake.send_update(fake.private_message(OTHER_USER, "/start WRONGCODE"))
    await fake.wait_for_bot_messages(OTHER_USER, 2)
    assert "invite" in (fake.bot_texts(OTHER_USER)[-1] or "").lower()
    assert llm.requests == []


async def test_suspended_tenant_is_refused(start: Start, llm: FakeLLMServer) -> None:
    run = await start()
    fake = run.fake
    await bind_private(run)
    await admin(run.app, "tenant", "suspend", "acme")
    await fake.send_update(fake.private_message(USER, "are you there?"))
    await fake.wait_for_bot_messages(USER, 2)
    assert "suspended" in fake.bot_texts(USER)[-1]
    assert llm.requests == []


async def test_photo_reaches_a_vision_assistant(start: Start, llm: FakeLLMServer) -> None:
    run = await start()
    fake = run.fake
    await bind_private(run)
    photo = b"\xff\xd8\xff\xe0 large jpeg bytes " * 40
    await fake.send_update(fake.private_message(USER, photo=photo, caption="What is this?"))
    await fake.wait_for_bot_messages(USER, 2)
    body = str(llm.last_request.json)
    assert base64.b64encode(photo).decode() in body  # the largest size, downloaded
    assert "What is this?" in body
    assert fake.calls_to("getFile") and fake.calls_to("download")
    assert fake.bot_texts(USER)[-1] == llm.reply_text


async def test_voice_is_transcribed_then_answered(start: Start, llm: FakeLLMServer) -> None:
    run = await start()
    fake = run.fake
    await bind_private(run)
    await fake.send_update(fake.private_message(USER, voice=b"OggS fake opus audio"))
    await fake.wait_for_bot_messages(USER, 2)
    paths = [r.path for r in llm.requests]
    assert paths[0].endswith("/audio/transcriptions")
    assert llm.requests[0].files["file"] == b"OggS fake opus audio"
    assert "transcribed voice message" in str(llm.requests[-1].json)
    assert fake.bot_texts(USER)[-1] == llm.reply_text
    assert await count(run.app, UsageEvent) == 2

    await fake.send_update(fake.private_message(USER, sticker=True))
    await fake.wait_for_bot_messages(USER, 3)
    assert "not supported" in fake.bot_texts(USER)[-1]


async def test_admin_commands_from_telegram_and_menus(start: Start, llm: FakeLLMServer) -> None:
    run = await start(SUPERADMINS=f"telegram:{ADMIN_ID}")
    fake = run.fake
    menus = fake.commands
    default = [c["command"] for c in menus['{"type": "default"}']]
    assert "start" in default and "help" in default and "tenant" not in default
    admin_menu = [c["command"] for c in menus[f'{{"chat_id": {ADMIN_ID}, "type": "chat"}}']]
    assert "tenant" in admin_menu and "admin" in admin_menu and "start" in admin_menu

    await bind_private(run)
    await fake.send_update(fake.private_message(ADMIN_ID, "/tenant list"))
    await fake.wait_for_bot_messages(ADMIN_ID)
    assert "acme" in fake.bot_texts(ADMIN_ID)[0]
    await fake.send_update(fake.private_message(ADMIN_ID, "/tenant create beta --name Beta"))
    await fake.wait_for_bot_messages(ADMIN_ID, 2)
    assert f"https://t.me/{fake.username}?start=" in fake.bot_texts(ADMIN_ID)[-1]

    await fake.send_update(fake.private_message(USER, "/tenant list"))
    await fake.wait_for_bot_messages(USER, 2)
    assert fake.bot_texts(USER)[-1].startswith("Permission denied")
    assert llm.requests == []


async def test_wrong_arguments_answer_the_generated_usage_line(start: Start) -> None:
    run = await start(SUPERADMINS=f"telegram:{ADMIN_ID}")
    fake = run.fake
    await fake.send_update(fake.private_message(ADMIN_ID, "/tokens grant acme lots"))
    await fake.wait_for_bot_messages(ADMIN_ID)
    usage = {c.name: c.usage for c in run.app.registry}["tokens grant"]
    assert fake.bot_texts(ADMIN_ID)[-1].splitlines()[-1] == f"Usage: {usage}"


async def test_stats_chart_arrives_as_a_photo(start: Start, llm: FakeLLMServer) -> None:
    run = await start(SUPERADMINS=f"telegram:{ADMIN_ID}")
    fake = run.fake
    await bind_private(run)
    await fake.send_update(fake.private_message(USER, "hello"))
    await fake.wait_for_bot_messages(USER, 2)
    await fake.send_update(fake.private_message(ADMIN_ID, "/stats top"))
    await fake.wait_for(lambda: bool(fake.calls_to("sendPhoto")))
    [photo] = fake.calls_to("sendPhoto")
    assert photo.params["chat_id"] in (ADMIN_ID, str(ADMIN_ID))
    [png] = photo.files.values()
    assert Image.open(io.BytesIO(png)).format == "PNG"
    assert "acme" in fake.bot_texts(ADMIN_ID)[-1]


async def test_files_go_out_as_photo_and_document(telegram: FakeTelegramServer) -> None:
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession

    bot = Bot(telegram.token, session=AiohttpSession(api=api_server(telegram.base_url)))
    try:
        sink = TelegramSink(Delivery(bot, Pacing()), ChatTarget(USER, private=True))
        await sink.send_file(OutboundFile("chart.png", b"\x89PNG chart", "image/png", "Usage"))
        await sink.send_file(OutboundFile("usage.csv", b"a,b\n1,2\n", "text/csv"))
    finally:
        await bot.session.close()
    (photo,) = telegram.calls_to("sendPhoto")
    (document,) = telegram.calls_to("sendDocument")
    assert list(photo.files.values()) == [b"\x89PNG chart"] and photo.params["caption"] == "Usage"
    assert list(document.files.values()) == [b"a,b\n1,2\n"]
    assert document.params["__filename__" + document.params["document"][9:]] == "usage.csv"


# -- webhook mode -----------------------------------------------------------------------------


async def test_webhook_checks_the_secret_and_answers(start: Start, llm: FakeLLMServer) -> None:
    run = await start("webhook")
    fake = run.fake
    assert fake.webhook == {
        "url": run.url + WEBHOOK_PATH,
        "secret_token": SECRET,
        "allowed_updates": ["message"],
    }
    assert not fake.calls_to("deleteWebhook")
    await bind_private(run)  # delivered through the webhook

    forged = fake.private_message(USER, "forged turn")
    assert await fake.post_webhook(forged, secret="wrong") == 401
    assert await fake.post_webhook(forged, secret="") == 401
    async with (
        aiohttp.ClientSession() as client,
        client.post(
            run.url + WEBHOOK_PATH, data=b"not json", headers={SECRET_HEADER: SECRET}
        ) as response,
    ):
        assert response.status == 400
    assert await fake.post_webhook(fake.private_message(USER, "real question")) == 200
    await fake.wait_for_bot_messages(USER, 2)
    assert fake.bot_texts(USER)[-1] == llm.reply_text
    assert len(llm.requests) == 1 and "forged" not in str(llm.requests[0].json)
    assert not fake.calls_to("getUpdates", ok_only=False)


async def test_deeply_nested_body_with_the_secret_is_a_400_without_a_traceback(
    start: Start, llm: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    """JSON nested deeper than the parser goes used to escape as a 500 with a RecursionError."""
    run = await start("webhook")
    depth = 100_000
    body = '{"update_id": 1, "message": ' + "[" * depth + "]" * depth + "}"
    headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    caplog.set_level(logging.INFO)
    async with (
        aiohttp.ClientSession() as client,
        client.post(run.url + WEBHOOK_PATH, data=body, headers=headers) as response,
    ):
        status = response.status
    await run.channel.drain(5)

    assert status == 400
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert any("RecursionError" in r.getMessage() for r in caplog.records)
    assert not llm.requests and await count(run.app, ProcessedUpdate) == 0
    assert await run.fake.post_webhook(run.fake.private_message(USER, "still here?")) == 200


async def test_same_update_twice_is_answered_once_even_across_processes(
    start: Start, llm: FakeLLMServer
) -> None:
    first = await start("webhook")
    second = await start("webhook")
    fake = first.fake
    await bind_private(first)
    update = fake.private_message(USER, "just once please")
    assert await fake.post_webhook(update) == 200
    assert await fake.post_webhook(update) == 200  # Telegram retrying
    assert await fake.post_webhook(update, url=first.url + WEBHOOK_PATH) == 200
    assert await fake.post_webhook(update, url=second.url + WEBHOOK_PATH) == 200
    await fake.wait_for_bot_messages(USER, 2)
    await first.channel.drain(5)
    await second.channel.drain(5)
    assert fake.bot_texts(USER)[1:] == [llm.reply_text]
    assert len(llm.requests) == 1
    assert await count(first.app, UsageEvent) == 1


# -- formatting and addressing (pure functions) -----------------------------------------------


def test_markdown_becomes_valid_telegram_html() -> None:
    html = markdown_to_html(
        "# Plan\n**bold** *it* snake_case `a<b` <script> & [docs](https://x.io/?a=1&b=2)\n"
        "- item\n```py\nif a < b:\n    pass\n```\n**unclosed"
    )
    assert parse_html(html).startswith("Plan\nbold it snake_case a<b <script> & docs\n• item")
    assert "<b>bold</b>" in html and "<i>it</i>" in html and "<code>a&lt;b</code>" in html
    assert '<pre><code class="language-py">' in html and "**unclosed" in html
    assert '<a href="https://x.io/?a=1&amp;b=2">docs</a>' in html


def test_split_keeps_every_chunk_balanced_and_within_the_limit() -> None:
    text = "**" + "Bold words go on. " * 300 + "**\n\n```\n" + "x = 1 < 2\n" * 600 + "```"
    chunks = render_markdown(text.replace(". **", ".**"))
    assert len(chunks) >= 3
    for chunk in chunks:
        assert len(parse_html(chunk.html)) <= 4096  # raises if Telegram would reject it
        assert parse_html(chunk.html) == chunk.plain
    assert any(c.html.startswith("<pre>") for c in chunks[1:])  # reopened after a cut


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="ab *_`~#-[]()<>&\n\t😀é.:/", max_size=300),
    limit=st.integers(min_value=8, max_value=120),
)
def test_every_chunk_fits_and_what_fits_stays_one_message(text: str, limit: int) -> None:
    """Measured as Telegram does (displayed text, UTF-16 units): a chunk never exceeds the
    limit, and an answer that fits is sent whole, as one message."""
    chunks = render_markdown(text, limit)
    for chunk in chunks:
        shown = parse_html(chunk.html)  # raises if Telegram would reject it
        assert utf16_len(shown) <= limit
        assert shown == chunk.plain
    markup = markdown_to_html(text)
    whole = parse_html(markup)
    if whole.strip() and utf16_len(whole) <= limit:
        assert [c.html for c in chunks] == [markup]


def _message(chat: dict[str, Any], text: str, **extra: Any) -> Message:
    return Message.model_validate(
        {
            "message_id": 1,
            "date": 0,
            "chat": chat,
            "from": {"id": USER, "is_bot": False, "first_name": "Ann", "username": "ann"},
            "text": text,
            **extra,
        }
    )


async def _no_download(_file_id: str) -> bytes:
    return b""


def test_group_messages_need_to_be_addressed_to_the_bot() -> None:
    me = BotIdentity(42, "sb_bot")
    group = {"id": GROUP, "type": "supergroup", "title": "Team"}

    def envelope(text: str, **extra: Any) -> InboundMessage | None:
        return to_envelope(_message(group, text, **extra), 7, me, _no_download)

    assert envelope("just chatting") is None
    assert envelope("/help@other_bot") is None
    command = envelope("/help@sb_bot")
    assert command is not None and command.text == "/help@sb_bot"
    mention = envelope(
        "hey @sb_bot summarise this",
        entities=[{"type": "mention", "offset": 4, "length": 7}],
    )
    assert mention is not None and mention.text == "hey summarise this"
    assert (mention.scope_key, mention.chat_key, mention.is_private) == (
        f"chat:{GROUP}",
        str(GROUP),
        False,
    )
    assert mention.update_key == "7" and mention.user_id == str(USER)
    reply = envelope(
        "thanks",
        reply_to_message={
            "message_id": 0,
            "date": 0,
            "chat": group,
            "from": {"id": 42, "is_bot": True, "first_name": "SB"},
        },
    )
    assert reply is not None
    private = to_envelope(
        _message({"id": USER, "type": "private", "first_name": "Ann"}, "hi"), 8, me, _no_download
    )
    assert private is not None and private.scope_key == f"user:{USER}" and private.is_private
