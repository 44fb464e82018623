"""Generated media end to end: ``/image`` and an image assistant through the fake Bot API,
a voice message to a speech assistant answered aloud, ``/library get`` resending the image,
failures that cost nothing, a refused tenant that never reaches the provider, and the
per-image / per-character price arithmetic."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from assistants.pricing import MCHAR, unit_cost
from bot.app import App
from core.envelope import Attachment
from core.errors import UsageError
from core.money import to_micros
from handlers.telegram.channel import api_server
from handlers.telegram.delivery import ChatTarget, Delivery, Pacing
from handlers.telegram.sink import TelegramSink
from storage.models import ContentItem, UsageEvent
from storage.repositories.tenants import TenantRepository
from tests.conftest import admin, bind_console, console_message, tenant_with_tokens
from tests.fakes.llm_server import OGG_AUDIO, RED_PNG, FakeLLMServer
from tests.fakes.telegram_server import FakeTelegramServer

USER = 515151


async def _painter(app: App, model: str = "gpt-image-1") -> None:
    await admin(
        app,
        "assistant",
        "create",
        "painter",
        "--name",
        "Painter",
        "--prompt",
        "Draw.",
        "--model",
        model,
        "--capabilities",
        "image_generation",
    )


async def _telegram_turn(app: App, telegram: FakeTelegramServer, text: str, **extra: Any) -> None:
    bot = Bot(telegram.token, session=AiohttpSession(api=api_server(telegram.base_url)))
    try:
        sink = TelegramSink(Delivery(bot, Pacing()), ChatTarget(USER, private=True))
        await app.pipeline.handle(console_message(text, slug="acme", **extra), sink)
    finally:
        await bot.session.close()


async def _balance(app: App) -> int:
    async with app.deps.sessions() as session:
        return (await TenantRepository(session).get("acme")).token_balance


async def _items(app: App) -> list[ContentItem]:
    async with app.deps.sessions() as session:
        return list((await session.execute(select(ContentItem))).scalars())


async def _events(app: App, kind: str) -> list[UsageEvent]:
    async with app.deps.sessions() as session:
        query = select(UsageEvent).where(UsageEvent.kind == kind)
        return list((await session.execute(query)).scalars())


async def test_image_command_sends_one_photo_saves_the_png_and_debits_the_usage(
    app: App, llm: FakeLLMServer
) -> None:
    await tenant_with_tokens(app, "acme", 50_000)
    await bind_console(app, "acme")
    await _painter(app)
    async with FakeTelegramServer() as telegram:
        await _telegram_turn(app, telegram, "/use painter")
        await _telegram_turn(app, telegram, "/image a red square")
        (photo,) = telegram.calls_to("sendPhoto")
    assert list(photo.files.values()) == [RED_PNG]
    assert photo.params["caption"].startswith("#1 a red square")
    request = llm.last_request
    assert request.path == "/v1/images/generations"
    assert request.json["model"] == "gpt-image-1" and "response_format" not in request.json
    (item,) = await _items(app)
    assert (item.kind, item.text, item.mime_type, item.size_bytes) == (
        "image",
        "a red square",
        "image/png",
        len(RED_PNG),
    )
    assert item.media_path is not None
    assert (app.settings.media_dir / item.media_path).read_bytes() == RED_PNG
    # The usage the Images API reported: 3 prompt words in, 1056 image tokens out.
    assert await _balance(app) == 50_000 - (3 + 1056)
    (event,) = await _events(app, "image")
    assert (event.status, event.input_tokens, event.output_tokens) == ("settled", 3, 1056)
    assert event.cost_micros == to_micros(Decimal(3) * 5 / 10**6 + Decimal(1056) * 40 / 10**6)

    found = await admin(app, "library", "red", "--tenant", "acme")
    assert [i["id"] for i in found.data] == [1]
    images = await admin(app, "library", "image", "--tenant", "acme")
    assert [i["kind"] for i in images.data] == ["image"]

    async with FakeTelegramServer() as telegram:
        await _telegram_turn(app, telegram, "/library get 1")
        (again,) = telegram.calls_to("sendPhoto")
    assert list(again.files.values()) == [RED_PNG]


async def test_a_failed_image_call_costs_nothing_and_says_so(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app, "acme", 50_000)
    await bind_console(app, "acme")
    await _painter(app)
    async with FakeTelegramServer() as telegram:
        await _telegram_turn(app, telegram, "/use painter")
        llm.fail_next(500)
        await _telegram_turn(app, telegram, "/image a red square")
        assert not telegram.calls_to("sendPhoto")
        reply = telegram.bot_texts(USER)[-1]
    assert "could not be made" in reply and "Nothing was charged" in reply
    assert await _balance(app) == 50_000
    assert await _items(app) == []
    (event,) = await _events(app, "image")
    assert event.status == "failed" and event.charged_tokens in (0, None)


async def test_a_tenant_without_balance_is_refused_before_any_provider_call(
    app: App, llm: FakeLLMServer
) -> None:
    await tenant_with_tokens(app, "acme", 100)
    await bind_console(app, "acme")
    await _painter(app)
    async with FakeTelegramServer() as telegram:
        await _telegram_turn(app, telegram, "/use painter")
        await _telegram_turn(app, telegram, "/image a red square")
        assert not telegram.calls_to("sendPhoto")
        assert "balance" in telegram.bot_texts(USER)[-1].lower()
    assert not [r for r in llm.requests if r.path == "/v1/images/generations"]
    assert await _balance(app) == 100 and await _items(app) == []


async def test_the_image_prompter_draws_through_the_responses_tool(
    app: App, llm: FakeLLMServer
) -> None:
    await tenant_with_tokens(app, "acme", 50_000)
    await bind_console(app, "acme")
    async with FakeTelegramServer() as telegram:
        await _telegram_turn(app, telegram, "/use image-prompter")
        await _telegram_turn(app, telegram, "a lighthouse at dawn")
        (photo,) = telegram.calls_to("sendPhoto")
        actions = [c.params["action"] for c in telegram.calls_to("sendChatAction")]
    assert "upload_photo" in actions
    assert list(photo.files.values()) == [RED_PNG]
    body = llm.last_request.json
    assert body["tools"][0]["type"] == "image_generation" and body["model"] == "gpt-4o-mini"
    (event,) = await _events(app, "image")
    assert event.status == "settled"
    usage = llm.last_usage
    assert usage is not None
    assert event.charged_tokens == usage["input"] + usage["output"]
    (item,) = await _items(app)
    assert item.kind == "image" and item.text == "a lighthouse at dawn"


async def test_a_voice_message_to_a_speech_assistant_gets_a_voice_reply(
    app: App, llm: FakeLLMServer
) -> None:
    await tenant_with_tokens(app, "acme", 50_000)
    await bind_console(app, "acme")
    await admin(app, "assistant", "set", "general", "capabilities", "vision,speech")
    llm.reply_text = "Hello there."

    async def voice() -> bytes:
        return b"OggS fake voice"

    attachment = Attachment("audio", "audio/ogg", "voice.ogg", 15, voice)
    async with FakeTelegramServer() as telegram:
        await _telegram_turn(app, telegram, "", attachments=(attachment,))
        (sent,) = telegram.calls_to("sendVoice")
        assert telegram.bot_texts(USER) == ["Hello there."]
    assert list(sent.files.values()) == [OGG_AUDIO]
    speech = next(r for r in llm.requests if r.path == "/v1/audio/speech")
    assert speech.json["response_format"] == "opus" and speech.json["input"] == "Hello there."
    (event,) = await _events(app, "speech")
    assert (event.status, event.charged_tokens) == ("settled", 3 + len("Hello there."))
    audio = [i for i in await _items(app) if i.kind == "audio"]
    assert [(i.mime_type, i.size_bytes) for i in audio] == [("audio/ogg", len(OGG_AUDIO))]


async def test_speech_in_another_format_goes_as_an_audio_file(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app, "acme", 50_000)
    await bind_console(app, "acme")
    await admin(app, "assistant", "set", "general", "capabilities", "speech")
    llm.speech_format = "mp3"
    async with FakeTelegramServer() as telegram:
        await _telegram_turn(app, telegram, "/speak good morning")
        assert not telegram.calls_to("sendVoice")
        (sent,) = telegram.calls_to("sendAudio")
    assert next(iter(sent.files.values())).startswith(b"ID3")


async def test_capabilities_are_validated(app: App) -> None:
    with pytest.raises(UsageError, match="unknown capability 'telepathy'"):
        await admin(app, "assistant", "set", "general", "capabilities", "vision,telepathy")
    listed = await admin(app, "assistant", "list")
    general = next(a for a in listed.data if a["slug"] == "general")
    assert general["capabilities"] == ["vision"]
    prompter = next(a for a in listed.data if a["slug"] == "image-prompter")
    assert prompter["capabilities"] == ["image_generation"]


@given(
    images=st.integers(0, 1000),
    characters=st.integers(0, 10**7),
    per_image=st.integers(0, 10**6),
    per_mchar=st.integers(0, 10**8),
)
def test_unit_prices_are_exact(
    images: int, characters: int, per_image: int, per_mchar: int
) -> None:
    cost = unit_cost(images, characters, Decimal(per_image) / 10**6, Decimal(per_mchar) / 10**6)
    # micro-units: images × price exactly, characters × price per million, rounded once.
    exact_micros = Decimal(images * per_image) + Decimal(characters * per_mchar) / MCHAR
    assert cost * 10**6 == exact_micros
    assert to_micros(cost) == int(exact_micros.to_integral_value(rounding="ROUND_HALF_EVEN"))
    assert unit_cost(images, characters, None, None) == 0


async def test_the_image_command_shows_upload_photo_before_the_photo(
    app: App, llm: FakeLLMServer
) -> None:
    await tenant_with_tokens(app, "acme", 50_000)
    await bind_console(app, "acme")
    await _painter(app)
    async with FakeTelegramServer() as telegram:
        await _telegram_turn(app, telegram, "/use painter")
        telegram.calls.clear()
        await _telegram_turn(app, telegram, "/image a red square")
        sent = [
            (c.method, c.params.get("action"))
            for c in telegram.calls
            if c.method in ("sendChatAction", "sendPhoto")
        ]
    assert sent == [("sendChatAction", "upload_photo"), ("sendPhoto", None)]


async def test_the_speak_command_shows_record_voice_before_the_voice(
    app: App, llm: FakeLLMServer
) -> None:
    await tenant_with_tokens(app, "acme", 50_000)
    await bind_console(app, "acme")
    await admin(app, "assistant", "set", "general", "capabilities", "speech")
    async with FakeTelegramServer() as telegram:
        await _telegram_turn(app, telegram, "/speak good morning")
        sent = [
            (c.method, c.params.get("action"))
            for c in telegram.calls
            if c.method in ("sendChatAction", "sendVoice")
        ]
    assert sent == [("sendChatAction", "record_voice"), ("sendVoice", None)]
