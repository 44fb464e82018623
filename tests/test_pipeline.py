"""End-to-end turns through the real pipeline against the fake LLM server."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import func, select

from bot.app import App
from core.envelope import Attachment
from storage.models import ContentItem, Message, UsageEvent
from tests.conftest import admin, bind_console, console_message, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.sinks import RecordingSink


async def _count(app: App, model: type) -> int:
    async with app.deps.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_turn_streams_answer_and_saves_library_item(app: App, llm: FakeLLMServer) -> None:
    llm.reply_text = "Paris is the capital of France."
    await tenant_with_tokens(app)
    await bind_console(app)

    sink = await say(app, "What is the capital of France?", update_key="1")

    assert "".join(sink.deltas) == llm.reply_text
    assert len(sink.deltas) > 1, "the answer should arrive in several deltas"
    assert sink.texts == [llm.reply_text]
    async with app.deps.sessions() as session:
        item = (await session.execute(select(ContentItem))).scalar_one()
        roles = [
            m.role for m in (await session.execute(select(Message).order_by(Message.id))).scalars()
        ]
    assert item.text == llm.reply_text and item.kind == "text"
    assert item.conversation_id is not None and item.message_id is not None
    assert roles == ["user", "assistant"]
    body = llm.last_request.json
    assert body["model"] == "gpt-4o-mini"
    assert "capital of France" in str(body["input"])
    assert "helpful" in body["instructions"], "the general assistant's system prompt is sent"


async def test_context_carries_previous_turns_until_new(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    llm.reply_text = "Nice to meet you, Ada."
    await say(app, "My name is Ada.")
    llm.reply_text = "Your name is Ada."
    await say(app, "What is my name?")
    second = str(llm.last_request.json["input"])
    assert "My name is Ada." in second and "Nice to meet you, Ada." in second

    await say(app, "/new")
    await say(app, "Who am I?")
    third = str(llm.last_request.json["input"])
    assert "My name is Ada." not in third


async def test_context_is_trimmed_to_budget(make_app, llm: FakeLLMServer) -> None:  # type: ignore[no-untyped-def]
    app = await make_app(CONTEXT_TOKEN_BUDGET="400")
    await tenant_with_tokens(app)
    await bind_console(app)
    for i in range(6):
        await say(app, f"message number {i} " + "padding " * 20)
    body = str(llm.last_request.json["input"])
    assert "message number 5" in body
    assert "message number 0" not in body, "oldest messages fall out of the budget"


async def test_use_switches_assistant_and_conversation(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    listing = await say(app, "/assistants")
    for slug in ("general", "post-writer", "analyst", "image-prompter"):
        assert slug in listing.texts[0]
    await say(app, "hello")
    reply = await say(app, "/use post-writer")
    assert "Post writer" in reply.texts[0]
    await say(app, "write a post")
    body = llm.last_request.json
    assert "posts" in body["instructions"]
    assert "hello" not in str(body["input"]), "a new assistant starts a new conversation"
    wrong = await say(app, "/use nope")
    assert "No assistant 'nope'" in wrong.texts[0]


async def test_unbound_chat_gets_explanation_and_no_llm_call(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app)
    sink = await say(app, "hello?", slug="stranger")
    assert "not linked" in sink.texts[0]
    assert llm.requests == []


async def test_start_code_binds_once(app: App, llm: FakeLLMServer) -> None:
    code = await tenant_with_tokens(app)
    first = await say(app, f"/start {code}", slug="x", user="alice")
    assert "linked to Acme" in first.texts[0]
    answered = await say(app, "hi", slug="x", user="alice")
    assert answered.texts == [llm.reply_text]
    again = await say(app, f"/start {code}", slug="y", user="bob")
    assert "already used" in again.texts[0]
    bad = await say(app, "/start not-a-code", slug="z", user="carol")
    assert "not valid" in bad.texts[0]


async def test_suspended_tenant_is_refused(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    await admin(app, "tenant", "suspend", "acme")
    sink = await say(app, "hello")
    assert "suspended" in sink.texts[0]
    assert llm.requests == []
    await admin(app, "tenant", "activate", "acme")
    assert (await say(app, "hello")).texts == [llm.reply_text]


async def test_duplicate_update_is_handled_once(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    first = await say(app, "hello", update_key="42")
    second = await say(app, "hello", update_key="42")
    assert first.texts == [llm.reply_text] and second.texts == []
    assert len(llm.requests) == 1
    assert await _count(app, UsageEvent) == 1


async def test_failed_send_keeps_output_in_library(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)

    class BrokenStream:
        async def append(self, delta: str) -> None:
            raise ConnectionError("channel down")

        async def finish(self, text: str) -> None:
            raise ConnectionError("channel down")

        async def abort(self, message: str) -> None:
            raise ConnectionError("channel down")

    class BrokenSink(RecordingSink):
        def open_stream(self) -> BrokenStream:  # type: ignore[override]
            return BrokenStream()

    sink = BrokenSink()
    await app.pipeline.handle(console_message("hello"), sink)
    assert await _count(app, ContentItem) == 1
    async with app.deps.sessions() as session:
        event = (await session.execute(select(UsageEvent))).scalar_one()
    assert event.status == "settled"


async def test_unsupported_attachment_is_refused_clearly(app: App, llm: FakeLLMServer) -> None:
    from core.envelope import Attachment

    await tenant_with_tokens(app)
    await bind_console(app)

    async def fetch() -> bytes:
        return b"\x00"

    sticker = Attachment("other", "application/x-tgsticker", "s.tgs", 1, fetch)
    sink = RecordingSink()
    await app.pipeline.handle(console_message("", attachments=(sticker,)), sink)
    assert "not supported" in sink.texts[0]
    assert llm.requests == []


async def test_text_document_is_used_as_input(app: App, llm: FakeLLMServer) -> None:
    from core.envelope import Attachment

    await tenant_with_tokens(app)
    await bind_console(app)

    async def fetch() -> bytes:
        return b"quarterly revenue grew by 12 percent"

    doc = Attachment("document", "text/plain", "report.txt", 36, fetch)
    await app.pipeline.handle(console_message("summarise", attachments=(doc,)), RecordingSink())
    assert "quarterly revenue grew" in str(llm.last_request.json["input"])


async def test_two_processes_sharing_a_database_answer_an_update_once(
    make_app,  # type: ignore[no-untyped-def]
    llm: FakeLLMServer,
) -> None:
    import asyncio

    first = await make_app()
    second = await make_app()
    await tenant_with_tokens(first)
    await bind_console(first)
    sinks = await asyncio.gather(
        say(first, "hello", update_key="same-update"),
        say(second, "hello", update_key="same-update"),
    )
    assert sorted(len(s.texts) for s in sinks) == [0, 1]
    assert len(llm.requests) == 1
    assert await _count(first, UsageEvent) == 1


async def _reserved(app: App, slug: str = "acme") -> int:
    from storage.repositories.tenants import TenantRepository

    async with app.deps.sessions() as session:
        return (await TenantRepository(session).get(slug)).tokens_reserved


async def _wait_for_reservation(app: App) -> None:
    for _ in range(200):
        if await _reserved(app) > 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the turn never reserved tokens")


async def test_a_cancelled_turn_gives_its_reservation_back_at_once(
    app: App, llm: FakeLLMServer
) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    llm.timeout_next()  # the provider hangs: the turn is mid-call when it is cancelled
    turn = asyncio.create_task(app.pipeline.handle(console_message("hello"), RecordingSink()))
    await _wait_for_reservation(app)
    turn.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await turn
    assert await _reserved(app) == 0
    async with app.deps.sessions() as session:
        event = (await session.execute(select(UsageEvent))).scalar_one()
    assert (event.status, event.charged_tokens, event.error) == ("failed", 0, "call cancelled")


async def test_a_cancelled_transcription_gives_its_reservation_back_at_once(
    app: App, llm: FakeLLMServer
) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    llm.timeout_next()

    async def fetch() -> bytes:
        return b"OggS fake opus audio"

    voice = Attachment("audio", "audio/ogg", "voice.ogg", 20, fetch)
    message = console_message("", attachments=(voice,))
    turn = asyncio.create_task(app.pipeline.handle(message, RecordingSink()))
    await _wait_for_reservation(app)
    for _ in range(200):  # the call is under way once the server has the request
        if llm.requests:
            break
        await asyncio.sleep(0.01)
    assert llm.requests[-1].path.endswith("/audio/transcriptions")
    turn.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await turn
    assert await _reserved(app) == 0
    async with app.deps.sessions() as session:
        event = (await session.execute(select(UsageEvent))).scalar_one()
    assert (event.kind, event.status, event.charged_tokens) == ("transcription", "failed", 0)


async def test_messages_of_one_chat_are_answered_in_arrival_order(
    app: App, llm: FakeLLMServer
) -> None:
    """The chat-order middleware: the second message waits for the first, whose answer is slow."""
    await tenant_with_tokens(app)
    await bind_console(app)
    llm.pause_fn = lambda body: 0.4 if str(body).count("first") == 1 else 0.0
    llm.reply_fn = lambda body: "re: " + ("second" if "second" in str(body) else "first")
    sink = RecordingSink()
    await asyncio.gather(
        app.pipeline.handle(console_message("first", update_key="1"), sink),
        app.pipeline.handle(console_message("second", update_key="2"), sink),
    )
    assert sink.texts == ["re: first", "re: second"]
    assert "first" in str(llm.requests[-1].json), "the second turn saw the first in its context"


async def test_nul_bytes_never_reach_the_model_or_cost_an_unbilled_answer(
    app: App, llm: FakeLLMServer
) -> None:
    """PostgreSQL text cannot hold NUL: a message or a reply carrying one must still be saved and
    charged, with the character replaced before the model sees it."""
    await tenant_with_tokens(app)
    await bind_console(app)
    llm.reply_text = "an answer with a \x00 inside"

    sink = await say(app, "what is \x00 this?")

    assert "\x00" not in str(llm.last_request.json)
    assert "what is \ufffd this?" in str(llm.last_request.json["input"])
    assert sink.texts == ["an answer with a \ufffd inside"]
    async with app.deps.sessions() as session:
        item = (await session.execute(select(ContentItem))).scalar_one()
        event = (await session.execute(select(UsageEvent))).scalar_one()
        asked = (await session.execute(select(Message).where(Message.role == "user"))).scalar_one()
    assert item.text == "an answer with a \ufffd inside"
    assert asked.content == "what is \ufffd this?"
    assert event.status == "settled" and event.charged_tokens > 0


async def test_a_claim_held_elsewhere_blocks_until_its_lease_runs_out(
    app: App, llm: FakeLLMServer
) -> None:
    """An update another process is answering is a duplicate; once that claim's lease has run
    out (the process vanished without a trace we can check), a redelivery answers it."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from storage.models import ProcessedUpdate

    await tenant_with_tokens(app)
    await bind_console(app)
    async with app.deps.sessions.begin() as session:
        session.add(
            ProcessedUpdate(
                channel="console",
                update_key="u-77",
                state="processing",
                holder="another-host/1:4242:abcd",
                lease_expires_at=datetime.now(UTC) + timedelta(minutes=5),
                reply_to={"chat_key": "acme:u1"},
            )
        )

    sink = RecordingSink()
    ctx = await app.pipeline.handle(console_message("hello", update_key="u-77"), sink)
    assert (ctx.outcome, sink.texts, llm.requests) == ("duplicate", [], [])

    async with app.deps.sessions.begin() as session:
        await session.execute(
            update(ProcessedUpdate).values(lease_expires_at=datetime.now(UTC) - timedelta(1))
        )
    ctx = await app.pipeline.handle(console_message("hello", update_key="u-77"), sink)
    assert ctx.outcome == "answered" and sink.texts == [llm.reply_text]
    async with app.deps.sessions() as session:
        claim = (await session.execute(select(ProcessedUpdate))).scalar_one()
    assert (claim.state, claim.holder) == ("done", app.deps.metering.holder)
