"""Metering: reported usage, genai-prices cost, reservations under concurrency, failures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import genai_prices
from sqlalchemy import select

from assistants.context import request_bound
from assistants.types import ChatMessage, Usage
from billing.metering import MIN_OUTPUT_TOKENS
from bot.app import App
from core.money import to_micros
from storage.models import LedgerEntry, ModelPrice, Tenant, UsageEvent
from storage.repositories.assistants import AssistantRepository
from storage.repositories.ledger import LedgerRepository
from storage.repositories.usage import PriceRepository
from tests.conftest import admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer


async def _events(app: App) -> list[UsageEvent]:
    async with app.deps.sessions() as session:
        return list((await session.execute(select(UsageEvent).order_by(UsageEvent.id))).scalars())


async def _tenant(app: App, slug: str = "acme") -> Tenant:
    async with app.deps.sessions() as session:
        return (await session.execute(select(Tenant).where(Tenant.slug == slug))).scalar_one()


async def test_usage_event_matches_server_usage_and_genai_price(
    app: App, llm: FakeLLMServer
) -> None:
    llm.reply_text = "one two three four five six seven"
    await tenant_with_tokens(app, tokens=10_000)
    await bind_console(app)
    await say(app, "count to seven please")

    [event] = await _events(app)
    reported = llm.last_usage
    assert (event.input_tokens, event.output_tokens) == (reported["input"], reported["output"])
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=event.input_tokens, output_tokens=event.output_tokens),
        "gpt-4o-mini",
        provider_id="openai",
    ).total_price
    assert event.cost_micros == to_micros(Decimal(expected))
    assert event.priced and event.status == "settled"
    assert event.charged_tokens == reported["input"] + reported["output"]
    tenant = await _tenant(app)
    assert tenant.token_balance == 10_000 - event.charged_tokens
    assert tenant.tokens_reserved == 0
    assert (await admin(app, "ledger", "verify")).data["ok"] is True


async def test_model_price_override_wins(app: App, llm: FakeLLMServer) -> None:
    async with app.deps.sessions.begin() as session:
        await PriceRepository(session).upsert(
            ModelPrice(
                provider="openai",
                model="gpt-4o-mini",
                input_per_mtok_micros=1_000_000,
                cached_input_per_mtok_micros=None,
                output_per_mtok_micros=2_000_000,
                currency="USD",
            )
        )
    await tenant_with_tokens(app)
    await bind_console(app)
    await say(app, "hello")
    [event] = await _events(app)
    # $1 per million input, $2 per million output.
    assert event.cost_micros == event.input_tokens * 1 + event.output_tokens * 2


async def test_unpriced_model_is_recorded_and_flagged(make_app, llm: FakeLLMServer) -> None:  # type: ignore[no-untyped-def]
    app = await make_app(DEFAULT_PROVIDER="openai_chat", DEFAULT_MODEL="my-local-llama")
    await tenant_with_tokens(app)
    await bind_console(app)
    await say(app, "hello")
    [event] = await _events(app)
    assert event.provider == "openai_chat" and event.model == "my-local-llama"
    assert event.priced is False and event.cost_micros == 0
    assert event.charged_tokens > 0, "tokens are still metered"


async def test_failed_calls_are_recorded_and_free(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app, tokens=5_000)
    await bind_console(app)
    llm.fail_next(status=500)
    sink = await say(app, "hello")
    assert "could not answer" in sink.texts[-1]
    llm.cut_next()
    await say(app, "hello again")
    llm.timeout_next()
    await say(app, "and again")

    events = await _events(app)
    assert [e.status for e in events] == ["failed", "failed", "failed"]
    assert all(e.charged_tokens == 0 and e.cost_micros == 0 for e in events)
    tenant = await _tenant(app)
    assert (tenant.token_balance, tenant.tokens_reserved) == (5_000, 0)
    async with app.deps.sessions() as session:
        kinds = [e.kind for e in (await session.execute(select(LedgerEntry))).scalars()]
    assert kinds == ["grant"], "no ledger entry for failed calls"


async def test_fifty_concurrent_turns_never_overdraw(app: App, llm: FakeLLMServer) -> None:
    llm.reply_text = " ".join(["word"] * 40)
    llm.delay = 0.001
    await tenant_with_tokens(app, tokens=0)
    await bind_console(app)
    # One turn: ~20 words in + 40 out, but the reservation bound is bytes-based (~150 + output).
    await admin(app, "tokens", "grant", "acme", "2200")

    sinks = await asyncio.gather(
        *(say(app, f"question {i} about something", user=f"u{i}") for i in range(50))
    )

    tenant = await _tenant(app)
    assert tenant.token_balance >= 0
    assert tenant.tokens_reserved == 0
    events = await _events(app)
    settled = [e for e in events if e.status == "settled"]
    refused = [s for s in sinks if any("used up" in t for t in s.texts)]
    assert settled and refused, "the balance runs out: some turns are served, the rest refused"
    assert len(settled) + len(refused) == 50
    assert tenant.token_balance == 2200 - sum(e.charged_tokens for e in settled)
    # No false refusal: what is left cannot cover even one more prompt and a minimal answer.
    assert tenant.token_balance < await _turn_minimum(app, "question 49 about something")
    assert (await admin(app, "ledger", "verify")).data["ok"] is True


async def _turn_minimum(app: App, text: str) -> int:
    """The fewest tokens a first turn saying ``text`` to the default assistant may reserve."""
    async with app.deps.sessions() as session:
        tenant = await _tenant(app)
        general = await AssistantRepository(session).resolve(tenant.id, "general")
    bound = request_bound(general.system_prompt, [ChatMessage("user", text)])
    return bound + MIN_OUTPUT_TOKENS


async def test_concurrent_members_are_all_served_while_the_balance_lasts(
    app: App, llm: FakeLLMServer
) -> None:
    """3,000 tokens, 10 members asking at once, ~20-token answers: each turn reserves about a
    thousand, so reservations alone would refuse most; waiting for them answers everyone."""
    llm.reply_text = " ".join(["word"] * 20)
    llm.delay = 0.01
    await tenant_with_tokens(app, tokens=3_000)
    await bind_console(app)

    sinks = await asyncio.gather(*(say(app, f"hello {i}", user=f"m{i}") for i in range(10)))

    assert [s.texts[-1] for s in sinks] == [llm.reply_text] * 10
    tenant = await _tenant(app)
    events = await _events(app)
    assert [e.status for e in events] == ["settled"] * 10
    assert tenant.token_balance == 3_000 - sum(e.charged_tokens for e in events) > 0
    assert tenant.tokens_reserved == 0
    assert (await admin(app, "ledger", "verify")).data["ok"] is True


async def test_over_reported_usage_is_charged_flagged_and_then_refused(
    app: App, llm: FakeLLMServer
) -> None:
    """A provider reporting 5,000 input tokens against a 300-token balance: what it billed is
    charged (the ledger holds it, the balance goes below zero), the excess is recorded as an
    overdraft, and the tenant is refused until topped up."""
    await tenant_with_tokens(app, tokens=300)
    await bind_console(app)
    llm.extra_input_tokens = 5_000

    first = await say(app, "hello")
    assert first.texts[-1] == llm.reply_text, "the answer itself is delivered"
    [event] = await _events(app)
    assert event.charged_tokens == event.input_tokens + event.output_tokens > 5_000
    assert event.overdraft_tokens == event.charged_tokens - event.reserved_tokens > 0
    tenant = await _tenant(app)
    assert tenant.token_balance == 300 - event.charged_tokens < 0
    assert (await admin(app, "ledger", "verify")).data["ok"] is True

    requests = len(llm.requests)
    refused = await say(app, "again")
    assert "used up" in refused.texts[-1]
    assert len(llm.requests) == requests, "no provider call while the balance is negative"


async def test_low_balance_caps_output_instead_of_refusing(app: App, llm: FakeLLMServer) -> None:
    llm.reply_text = " ".join(["word"] * 500)
    await tenant_with_tokens(app, tokens=300)
    await bind_console(app)
    sink = await say(app, "write a lot")
    assert sink.texts and "used up" not in sink.texts[0]
    sent_max = llm.last_request.json["max_output_tokens"]
    assert 16 <= sent_max < 300, "the output cap shrinks to what the balance covers"
    tenant = await _tenant(app)
    assert tenant.token_balance >= 0


async def test_exhausted_balance_refuses_without_llm_call(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app, tokens=10)
    await bind_console(app)
    sink = await say(app, "hello")
    assert "used up" in sink.texts[0]
    assert llm.requests == []


async def test_orphaned_reservation_released(make_app, llm: FakeLLMServer) -> None:  # type: ignore[no-untyped-def]
    now = [datetime.now(UTC)]
    app = await make_app(clock=lambda: now[0])
    await tenant_with_tokens(app, tokens=1_000)
    tenant = await _tenant(app)
    reservation = await app.deps.metering.reserve(
        tenant,
        key="crashed-turn",
        provider="openai",
        model="gpt-4o-mini",
        prompt_tokens_bound=100,
        max_output_tokens=200,
    )
    assert (await _tenant(app)).tokens_reserved == reservation.tokens == 300

    assert await app.deps.metering.release_orphans() == [], "lease still valid"
    now[0] += timedelta(hours=1)
    released = await app.deps.metering.release_orphans()
    assert [e.idempotency_key for e in released] == ["crashed-turn"]
    assert (await _tenant(app)).tokens_reserved == 0
    # A late settle of a released reservation charges nothing.
    async with app.deps.sessions.begin() as session:
        assert (
            await app.deps.metering.settle(session, reservation, Usage(10, 0, 10), latency_ms=1)
            is None
        )
    assert (await _tenant(app)).token_balance == 1_000


async def test_ledger_verify_detects_tampering(app: App) -> None:
    from sqlalchemy import update

    await tenant_with_tokens(app, tokens=1_000)
    async with app.deps.sessions.begin() as session:
        await session.execute(update(Tenant).values(token_balance=5_000))
    result = await admin(app, "ledger", "verify")
    assert result.ok is False
    assert result.data["mismatches"] == [{"slug": "acme", "balance": 5_000, "ledger_sum": 1_000}]


async def test_reservation_of_an_exited_process_is_released_at_start_up(
    make_app,  # type: ignore[no-untyped-def]
    database_url: str,
) -> None:
    import sys

    from assistants.pricing import Pricer
    from billing.holders import local_holder
    from billing.metering import Metering
    from bot.app import prepare_database

    app = await make_app()
    await tenant_with_tokens(app, tokens=1_000)
    tenant = await _tenant(app)
    # A process that reserved, then died (its pid is gone), and one still alive (this test).
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await child.wait()
    dead = Metering(app.deps.sessions, Pricer(), holder=local_holder(child.pid))
    alive = Metering(app.deps.sessions, Pricer())
    await dead.reserve(
        tenant,
        key="dead",
        provider="openai",
        model="gpt-4o-mini",
        prompt_tokens_bound=100,
        max_output_tokens=100,
    )
    await alive.reserve(
        tenant,
        key="alive",
        provider="openai",
        model="gpt-4o-mini",
        prompt_tokens_bound=100,
        max_output_tokens=100,
    )
    assert (await _tenant(app)).tokens_reserved == 400

    await prepare_database(app)  # what `switchboard run` does at start-up

    events = {e.idempotency_key: e for e in await _events(app)}
    assert events["dead"].status == "released"
    assert events["alive"].status == "reserved", "a live holder keeps its reservation"
    assert (await _tenant(app)).tokens_reserved == 200


async def test_fifty_members_on_two_processes_no_false_refusals(
    make_app,  # type: ignore[no-untyped-def]
    llm: FakeLLMServer,
) -> None:
    """A balance for about 100 turns, 50 members asking at once through two service instances
    sharing the database (separate engines and reservation holders): everyone is answered, the
    balance never goes below zero, the ledger holds."""
    llm.reply_text = " ".join(["word"] * 20)
    llm.delay = 0.005
    first = await make_app()
    second = await make_app()
    await tenant_with_tokens(first, tokens=100_000)
    await bind_console(first)
    probe = await say(first, "question 00 about something", user="probe")
    assert probe.texts == [llm.reply_text]
    [one] = await _events(first)
    balance = 100 * one.charged_tokens
    async with first.deps.sessions.begin() as session:
        tenant = await _tenant(first)
        await LedgerRepository(session).post(
            tenant.id, "adjustment", balance - tenant.token_balance, now=datetime.now(UTC)
        )

    sinks = await asyncio.gather(
        *(
            say(first if i % 2 else second, f"question {i:02d} about something", user=f"m{i}")
            for i in range(50)
        )
    )

    assert [s.texts for s in sinks] == [[llm.reply_text]] * 50, "no false refusal"
    tenant = await _tenant(first)
    events = [e for e in await _events(first) if e.id != one.id]
    assert len(events) == 50 and {e.status for e in events} == {"settled"}
    assert tenant.token_balance == balance - sum(e.charged_tokens for e in events) >= 0
    assert tenant.tokens_reserved == 0
    assert (await admin(first, "ledger", "verify")).data["ok"] is True
