"""Generated media in Slack, end to end: signed requests to /slack/events on the real aiohttp
app, the pipeline, the fake LLM, and the fake Slack Web API receiving the files through the
``files_upload_v2`` flow (``files.getUploadURLExternal``, the POST of the bytes to the upload
URL, ``files.completeUploadExternal`` sharing it in the channel)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.app import App
from storage.models import ContentItem, UsageEvent
from storage.repositories.tenants import TenantRepository
from tests.conftest import AppFactory, admin
from tests.fakes.llm_server import OGG_AUDIO, RED_PNG, FakeLLMServer
from tests.fakes.slack_server import (
    FakeFile,
    FakeSlackServer,
    command_body,
    message_event,
    signed_headers,
)
from tests.test_slack import SECRET, Harness, served, slack_env

UPLOAD_FLOW = ["files.getUploadURLExternal", "files.completeUploadExternal"]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackServer]:
    server = FakeSlackServer()
    server.users.update({"U0001": "Ada"})
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def h(
    make_app: AppFactory, slack: FakeSlackServer, llm: FakeLLMServer
) -> AsyncIterator[Harness]:
    app = await make_app(**slack_env(slack))
    async with served(app, slack, llm) as harness:
        yield harness


async def _balance(app: App) -> int:
    async with app.deps.sessions() as session:
        return (await TenantRepository(session).get("acme")).token_balance


async def _items(app: App, kind: str) -> list[ContentItem]:
    async with app.deps.sessions() as session:
        query = select(ContentItem).where(ContentItem.kind == kind)
        return list((await session.execute(query)).scalars())


async def _settled(app: App, kind: str) -> list[UsageEvent]:
    async with app.deps.sessions() as session:
        query = select(UsageEvent).where(UsageEvent.kind == kind, UsageEvent.status == "settled")
        return list((await session.execute(query)).scalars())


async def _slash(h: Harness, text: str) -> None:
    """``/sb TEXT`` signed as Slack sends it; a command that answers with a file alone (no
    text) posts nothing to the response URL, so :meth:`Harness.command` cannot be used."""
    body = command_body(text, response_url=h.slack.response_url("media"))
    headers = signed_headers(SECRET, body, content_type="application/x-www-form-urlencoded")
    assert (await h.post(body, headers)).status == 200
    await h.channel.drain(30)


def _uploaded(slack: FakeSlackServer) -> list[FakeFile]:
    """The files shared in a conversation: uploaded in full and completed with a channel."""
    return [f for f in slack.files.values() if f.channel is not None]


async def _painter(app: App) -> None:
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
        "gpt-image-1",
        "--capabilities",
        "image_generation",
    )


async def test_image_command_uploads_the_png_saves_it_and_debits_the_usage(h: Harness) -> None:
    await h.join()
    await _painter(h.app)
    before = await _balance(h.app)
    await h.command("use painter", name="use")

    await _slash(h, "image a red square")

    assert h.slack.methods()[-2:] == UPLOAD_FLOW
    (file,) = _uploaded(h.slack)
    assert file.data == RED_PNG, "the bytes the provider made, posted to the upload URL"
    assert file.channel == "D0001" and file.filename.endswith(".png")
    assert file.initial_comment is not None and file.initial_comment.startswith("#1 a red square")
    (item,) = await _items(h.app, "image")
    assert (item.text, item.mime_type, item.size_bytes) == (
        "a red square",
        "image/png",
        len(RED_PNG),
    )
    # The Images API's usage: 3 prompt words in, 1056 image tokens out.
    (event,) = await _settled(h.app, "image")
    assert event.charged_tokens == 3 + 1056
    assert await _balance(h.app) == before - (3 + 1056)


async def test_an_image_assistant_answers_a_dm_with_an_uploaded_png(h: Harness) -> None:
    await h.join()
    await h.command("use image-prompter", name="use")
    before = await _balance(h.app)

    await h.event(message_event("a lighthouse at dawn", ts="1700002000.000100"))

    assert h.slack.methods()[-2:] == UPLOAD_FLOW
    (file,) = _uploaded(h.slack)
    assert file.data == RED_PNG
    assert (file.channel, file.thread_ts) == ("D0001", "1700002000.000100")
    (item,) = await _items(h.app, "image")
    assert item.text == "a lighthouse at dawn"
    (event,) = await _settled(h.app, "image")
    usage = h.llm.last_usage
    assert usage is not None
    assert event.charged_tokens == usage["input"] + usage["output"]
    assert await _balance(h.app) == before - event.charged_tokens


async def test_speak_command_uploads_an_audio_file(h: Harness) -> None:
    await h.join()
    await admin(h.app, "assistant", "set", "general", "capabilities", "speech")
    before = await _balance(h.app)

    await _slash(h, "speak good morning")

    (file,) = _uploaded(h.slack)
    assert file.data == OGG_AUDIO and file.channel == "D0001"
    assert file.filename.endswith((".ogg", ".opus"))
    (item,) = await _items(h.app, "audio")
    assert (item.mime_type, item.size_bytes) == ("audio/ogg", len(OGG_AUDIO))
    (event,) = await _settled(h.app, "speech")
    assert event.charged_tokens == 3 + len("good morning")
    assert await _balance(h.app) == before - event.charged_tokens


async def test_a_voice_message_to_a_speech_assistant_gets_an_uploaded_audio_reply(
    h: Harness,
) -> None:
    await h.join()
    await admin(h.app, "assistant", "set", "general", "capabilities", "speech")
    h.llm.reply_text = "Hello there."
    url = h.slack.add_file("voice.ogg", b"OggS fake voice", "audio/ogg")
    event = message_event(
        "",
        ts="1700002100.000100",
        subtype="file_share",
        files=[
            {
                "id": "F1",
                "name": "voice.ogg",
                "mimetype": "audio/ogg",
                "size": 15,
                "url_private_download": url,
            }
        ],
    )

    await h.event(event)

    [reply] = h.slack.thread("D0001", "1700002100.000100")
    assert reply.text == "Hello there."
    (file,) = _uploaded(h.slack)
    assert file.data == OGG_AUDIO
    assert (file.channel, file.thread_ts) == ("D0001", "1700002100.000100")
    speech = next(r for r in h.llm.requests if r.path == "/v1/audio/speech")
    assert speech.json["input"] == "Hello there."
