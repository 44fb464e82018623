"""The library for people: ``/library get`` sends media as a photo or a document (text as text)
through the real Telegram and Slack sinks; archive, unarchive and the archived list; and a member
of one tenant never reaches another tenant's items or numbers."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from PIL import Image
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from bot.app import App
from bot.cli import main
from core.envelope import OutboundFile
from handlers.slack import SlackOptions
from handlers.slack.sink import SlackSink, SlackTarget
from handlers.telegram.channel import api_server
from handlers.telegram.delivery import ChatTarget, Delivery, Pacing
from handlers.telegram.sink import TelegramSink
from storage.models import AuditLog, ContentItem
from storage.repositories.library import LibraryRepository
from storage.repositories.tenants import TenantRepository
from tests.conftest import admin, bind_console, console_message, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.slack_server import FakeSlackServer
from tests.fakes.telegram_server import FakeTelegramServer

USER = 424242


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def _item(app: App, slug: str, **fields: object) -> int:
    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(slug)
        item = await LibraryRepository(session).add(ContentItem(tenant_id=tenant.id, **fields))
        return item.number


@pytest.fixture
async def stocked(app: App, llm: FakeLLMServer) -> App:
    """acme: 1 a text answer, 2 an image, 3 a PDF, 4 a file gone missing, 5 a path outside."""
    for slug in ("acme", "beta"):
        await tenant_with_tokens(app, slug)
        await bind_console(app, slug)
    llm.reply_text = "Acme's quarterly plan."
    await say(app, "plan the quarter", slug="acme")
    media = app.settings.media_dir
    _write(media / "images" / "cat.png", _png())
    _write(media / "docs" / "report.pdf", b"%PDF-1.4 report")
    _write(media.parent / "secret.txt", b"not for chat")
    await _item(
        app,
        "acme",
        kind="image",
        title="A red cat",
        text="prompt: a red cat",
        media_path="images/cat.png",
        mime_type="image/png",
    )
    await _item(app, "acme", kind="document", title="Report", media_path="docs/report.pdf")
    await _item(app, "acme", kind="image", title="Gone", media_path="images/gone.png")
    await _item(app, "acme", kind="document", title="Escape", media_path="../secret.txt")
    llm.reply_text = "Beta's private numbers."
    await say(app, "our numbers", slug="beta")
    return app


async def test_get_sends_text_as_text_and_media_as_files(stocked: App) -> None:
    text = await say(stocked, "/library get 1", slug="acme")
    assert text.texts == ["#1 [text] Acme's quarterly plan.\n\nAcme's quarterly plan."]
    assert text.files == []

    image = await say(stocked, "/library get 2", slug="acme")
    [photo] = image.files
    assert photo.is_image and photo.caption == "#2 [image] A red cat"
    assert Image.open(io.BytesIO(photo.read())).size == (64, 48)
    assert image.texts == ["prompt: a red cat"]

    document = await say(stocked, "/library get 3", slug="acme")
    [pdf] = document.files
    assert (pdf.file_name, pdf.mime_type, pdf.read()) == (
        "report.pdf",
        "application/pdf",
        b"%PDF-1.4 report",
    )
    assert not pdf.is_image and document.texts == []

    for number in (4, 5):
        missing = await say(stocked, f"/library get {number}", slug="acme")
        assert missing.texts == [f"No file for library item '{number}'."] and not missing.files
    assert (stocked.settings.media_dir.parent / "secret.txt").exists(), "never deleted either"


async def test_media_reach_telegram_as_photo_and_document(stocked: App) -> None:
    async with FakeTelegramServer() as telegram:
        bot = Bot(telegram.token, session=AiohttpSession(api=api_server(telegram.base_url)))
        try:
            sink = TelegramSink(Delivery(bot, Pacing()), ChatTarget(USER, private=True))
            for number in (2, 3):
                await stocked.pipeline.handle(
                    console_message(f"/library get {number}", slug="acme"), sink
                )
        finally:
            await bot.session.close()
    (photo,) = telegram.calls_to("sendPhoto")
    (document,) = telegram.calls_to("sendDocument")
    assert list(photo.files.values()) == [
        (stocked.settings.media_dir / "images/cat.png").read_bytes()
    ]
    assert photo.params["caption"] == "#2 [image] A red cat"
    assert list(document.files.values()) == [b"%PDF-1.4 report"]
    assert telegram.bot_texts(USER) == ["prompt: a red cat"]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackServer]:
    server = FakeSlackServer()
    await server.start()
    yield server
    await server.stop()


async def test_files_on_disk_reach_slack_as_uploads(slack: FakeSlackServer, tmp_path: Path) -> None:
    client = AsyncWebClient(token=slack.token, base_url=slack.api_base)
    target = SlackTarget(channel_id="D0001", team_id="T0001", user_id="U0001", thread_ts=None)
    csv_path = tmp_path / "export.csv"
    csv_path.write_bytes(b"a,b\r\n1,2\r\n")
    await SlackSink(client, target, SlackOptions()).send_file(
        OutboundFile.on_disk(csv_path, "usage.csv", "text/csv", caption="2 rows", temporary=True)
    )
    [file] = slack.files.values()
    assert (file.filename, file.data, file.initial_comment) == (
        "usage.csv",
        b"a,b\r\n1,2\r\n",
        "2 rows",
    )


async def test_archive_unarchive_and_the_archived_list(stocked: App) -> None:
    assert (await say(stocked, "/library archived", slug="acme")).texts == ["Nothing archived."]
    assert (await say(stocked, "/library archive 2", slug="acme")).texts == ["Archived item 2."]
    listing = (await say(stocked, "/library", slug="acme")).texts[0]
    assert "#2 " not in listing and "#1 [text]" in listing
    archived = (await say(stocked, "/library archived", slug="acme")).texts[0]
    assert archived.splitlines()[1].startswith("#2 [image]") and "#1 " not in archived
    assert (await say(stocked, "/library get 2", slug="acme")).files, "an archived item opens"

    assert (await say(stocked, "/library unarchive 2", slug="acme")).texts == ["Restored item 2."]
    assert "#2 [image]" in (await say(stocked, "/library", slug="acme")).texts[0]
    async with stocked.deps.sessions() as session:
        rows = await session.execute(
            select(AuditLog.action, AuditLog.target, AuditLog.before, AuditLog.after)
            .where(AuditLog.action.like("library.%"))
            .order_by(AuditLog.id)
        )
        assert [tuple(r) for r in rows.all()] == [
            ("library.archive", "acme#2", {"archived": False}, {"archived": True}),
            ("library.unarchive", "acme#2", {"archived": True}, {"archived": False}),
        ]
    refused = await say(stocked, "/library unarchive 99", slug="acme")
    assert refused.texts == ["No library item '99'."]


async def test_a_member_sees_only_their_own_tenant(stocked: App) -> None:
    mine = await say(stocked, "/library get 1", slug="beta")
    assert "Beta's private numbers." in mine.texts[0] and "Acme" not in mine.texts[0]
    assert (await say(stocked, "/library get 2", slug="beta")).texts == ["No library item '2'."]
    reach = [
        ("/library get 1 --tenant acme", "/library get --tenant", "viewer"),
        ("/library archived --tenant acme", "/library archived --tenant", "viewer"),
        ("/library archive 1 --tenant acme", "/library archive --tenant", "admin"),
        ("/usage --tenant acme", "/usage --tenant", "viewer"),
        ("/stats", "/stats", "viewer"),
        ("/stats tenant acme", "/stats tenant", "viewer"),
        ("/assistant stats", "/assistant stats", "viewer"),
        ("/alerts", "/alerts", "viewer"),
        ("/export usage acme", "/export usage", "viewer"),
        ("/audit acme", "/audit", "admin"),
    ]
    for command, name, role in reach:
        sink = await say(stocked, command, slug="beta")
        assert sink.texts == [f"Permission denied: {name} needs the {role} role."], command
        assert sink.files == []
    help_text = (await say(stocked, "/help", slug="beta")).texts[0]
    assert "/library archived" in help_text and "/library unarchive" in help_text
    for hidden in ("/alerts", "/audit", "/export", "/assistant stats"):
        assert hidden not in help_text
    viewer_help = await admin(stocked, "admin", "add", "console:watcher", "viewer")
    assert viewer_help.data["role"] == "viewer"
    watcher = (await say(stocked, "/help", slug="beta", user="watcher")).texts[0]
    assert "/alerts" in watcher and "/export usage" in watcher and "/audit" not in watcher


async def test_from_the_shell_media_are_saved_under_media_dir(stocked: App) -> None:
    media = stocked.settings.media_dir
    _write(media / "top.png", _png())
    number = await _item(
        stocked, "acme", kind="image", title="Top", media_path="top.png", mime_type="image/png"
    )
    env = {
        "DATABASE_URL": stocked.settings.database_url,
        "MEDIA_DIR": str(media),
        "OPENAI_BASE_URL": str(stocked.settings.openai_base_url),
    }
    for item, saved in ((2, media / "cat.png"), (number, media / "top.png")):
        out = io.StringIO()
        words = ["admin", "library", "get", str(item), "--tenant", "acme"]
        code = await asyncio.to_thread(main, words, environ=env, stdout=out)
        assert code == 0 and f"[file saved: {saved}]" in out.getvalue()
        assert Image.open(io.BytesIO(saved.read_bytes())).size == (64, 48)
