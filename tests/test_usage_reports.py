"""Usage reports as servers really send them: normalisation rules, and properties that hold for
any report (hypothesis), since what we bill comes from here."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
from hypothesis import given
from hypothesis import strategies as st

from assistants.estimate import estimate_prompt_tokens, estimate_text_tokens, estimate_usage
from assistants.pricing import genai_cost
from assistants.providers.usage_report import anthropic_usage, chat_usage, responses_usage
from assistants.types import ChatMessage, CompletionRequest, GenerationParams, ImageInput, Usage

# -- examples, one per convention -----------------------------------------------------------------


def test_responses_2025_shape_without_cache_writes() -> None:
    usage = responses_usage(
        {
            "input_tokens": 36,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 87,
            "output_tokens_details": {"reasoning_tokens": 64},
            "total_tokens": 123,
        }
    )
    assert usage == Usage(input_tokens=36, output_tokens=87, reasoning_tokens=64)


def test_responses_2026_shape_with_cache_writes() -> None:
    usage = responses_usage(
        {
            "input_tokens": 2000,
            "input_tokens_details": {"cached_tokens": 1200, "cache_write_tokens": 500},
            "output_tokens": 10,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 2010,
        }
    )
    assert usage == Usage(
        input_tokens=2000, cached_input_tokens=1200, output_tokens=10, cache_write_tokens=500
    )


def test_plainest_shape_and_unknown_fields() -> None:
    usage = responses_usage({"input_tokens": 5, "output_tokens": 7, "surprise": {"x": [1]}})
    assert usage == Usage(input_tokens=5, output_tokens=7)
    assert json.loads(usage.report or "") == {
        "input_tokens": 5,
        "output_tokens": 7,
        "surprise": {"x": [1]},
    }


def test_chat_cached_above_prompt_is_capped() -> None:
    # Azure AI Foundry: 161 cached of 7 prompt tokens.
    usage = chat_usage(
        {
            "prompt_tokens": 7,
            "completion_tokens": 20,
            "total_tokens": 27,
            "prompt_tokens_details": {"cached_tokens": 161},
        }
    )
    assert usage == Usage(input_tokens=7, cached_input_tokens=7, output_tokens=20)


def test_chat_reasoning_outside_completion_is_added() -> None:
    # xAI: total = prompt + completion + reasoning.
    usage = chat_usage(
        {
            "prompt_tokens": 12,
            "completion_tokens": 2,
            "total_tokens": 354,
            "completion_tokens_details": {"reasoning_tokens": 340},
        }
    )
    assert usage is not None
    assert (usage.output_tokens, usage.reasoning_tokens, usage.billable_tokens) == (342, 340, 354)


def test_chat_reasoning_inside_completion_is_not_added_twice() -> None:
    usage = chat_usage(
        {
            "prompt_tokens": 12,
            "completion_tokens": 342,
            "total_tokens": 354,
            "completion_tokens_details": {"reasoning_tokens": 340},
        }
    )
    assert usage is not None and usage.billable_tokens == 354


def test_chat_reasoning_larger_than_output_without_total() -> None:
    usage = chat_usage(
        {"prompt_tokens": 12, "completion_tokens": 2, "reasoning_tokens": 340},
    )
    assert usage is not None and usage.output_tokens == 342


def test_deepseek_cache_hits() -> None:
    usage = chat_usage(
        {
            "prompt_tokens": 100,
            "completion_tokens": 9,
            "total_tokens": 109,
            "prompt_cache_hit_tokens": 64,
            "prompt_cache_miss_tokens": 36,
        }
    )
    assert usage == Usage(input_tokens=100, cached_input_tokens=64, output_tokens=9)


def test_anthropic_cache_counts_add_to_input_and_deltas_revise() -> None:
    start = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
    }
    # A server tool revises input and cache counts at the end; a second delta revises output.
    revisions = [
        {"input_tokens": 2500, "cache_read_input_tokens": 300, "output_tokens": 40},
        {"output_tokens": 55, "cache_creation_input_tokens": None},
    ]
    usage = anthropic_usage(start, revisions)
    assert usage == Usage(
        input_tokens=2500 + 300 + 1000,
        cached_input_tokens=300,
        output_tokens=55,
        cache_write_tokens=1000,
    )
    assert json.loads(usage.report or "")["message_delta"] == revisions


def test_anthropic_without_final_output_is_unusable() -> None:
    assert anthropic_usage({"input_tokens": 10, "output_tokens": 1}, []) is None
    assert anthropic_usage({"input_tokens": 10, "output_tokens": 1}, [None]) is None


def test_input_and_output_are_required() -> None:
    assert responses_usage(None) is None
    assert responses_usage({"output_tokens": 3}) is None
    assert responses_usage({"input_tokens": "many", "output_tokens": 3}) is None
    assert chat_usage({"prompt_tokens": 3, "completion_tokens": -1}) is None
    assert chat_usage({"prompt_tokens": True, "completion_tokens": 1}) is None
    assert chat_usage({"prompt_tokens": 3.0, "completion_tokens": 1}) == Usage(3, 0, 1)


def test_pricing_error_is_unpriced_not_raised() -> None:
    # genai-prices refuses counts no normaliser would produce; the caller must not crash on it.
    impossible = Usage(input_tokens=7, cached_input_tokens=161, output_tokens=1)
    assert genai_cost("openai", "gpt-4o", impossible, datetime.now(UTC)) is None


def test_cache_writes_are_priced_at_the_cache_write_price() -> None:
    usage = Usage(
        input_tokens=1500, cached_input_tokens=200, output_tokens=100, cache_write_tokens=300
    )
    at = datetime.now(UTC)
    expected = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=1500, cache_read_tokens=200, cache_write_tokens=300, output_tokens=100
        ),
        "claude-sonnet-4-5",
        provider_id="anthropic",
        genai_request_timestamp=at,
    ).total_price
    without_writes = genai_cost("anthropic", "claude-sonnet-4-5", Usage(1500, 200, 100), at)
    assert genai_cost("anthropic", "claude-sonnet-4-5", usage, at) == Decimal(expected)
    assert without_writes is not None and Decimal(expected) > without_writes


def test_estimate_is_documented_rule() -> None:
    request = CompletionRequest(
        system_prompt="Be terse.",  # 9 ASCII chars: 3 tokens, + 3 framing
        messages=[ChatMessage("user", "東京", (ImageInput(b"x"),))],  # 2 + 3 + 1000
        params=GenerationParams(model="m", max_output_tokens=10),
        idempotency_key="k",
    )
    assert estimate_prompt_tokens(request) == 6 + 1005
    assert estimate_text_tokens("Hello world!") == 3
    usage = estimate_usage(request, "Hello world!", report='{"bad":1}')
    assert usage.estimated and usage.report == '{"bad":1}'
    assert usage.billable_tokens == 6 + 1005 + 3


# -- properties: any report at all ----------------------------------------------------------------

counts = st.one_of(
    st.integers(min_value=0, max_value=10**9),
    st.integers(max_value=-1),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=3),
)


def _report(draw: Any, keys: list[str]) -> dict[str, Any]:
    return {k: v for k in keys if (v := draw(counts)) is not None or draw(st.booleans())}


@st.composite
def responses_reports(draw: Any) -> dict[str, Any]:
    report = _report(draw, ["input_tokens", "output_tokens", "total_tokens"])
    report["input_tokens_details"] = _report(draw, ["cached_tokens", "cache_write_tokens"])
    report["output_tokens_details"] = _report(draw, ["reasoning_tokens"])
    return report


@st.composite
def chat_reports(draw: Any) -> dict[str, Any]:
    report = _report(
        draw, ["prompt_tokens", "completion_tokens", "total_tokens", "prompt_cache_hit_tokens"]
    )
    report["prompt_tokens_details"] = _report(draw, ["cached_tokens", "cache_write_tokens"])
    report["completion_tokens_details"] = _report(draw, ["reasoning_tokens"])
    return report


def _whole(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if value >= 0 else None


def _check_invariants(usage: Usage, inputs: int, output: int) -> None:
    assert usage.input_tokens == inputs, "input is billed exactly as reported"
    assert usage.output_tokens >= output, "output is never billed below the report"
    assert 0 <= usage.cached_input_tokens <= usage.input_tokens
    assert 0 <= usage.cache_write_tokens <= usage.input_tokens - usage.cached_input_tokens
    assert 0 <= usage.reasoning_tokens <= usage.output_tokens
    assert not usage.estimated
    # Whatever the counts, genai-prices accepts them: a shape never becomes a pricing error.
    assert genai_cost("openai", "gpt-4o", usage, datetime(2026, 1, 1, tzinfo=UTC)) is not None


@given(responses_reports())
def test_any_responses_report_normalises_or_is_refused(report: dict[str, Any]) -> None:
    usage = responses_usage(report)
    inputs, output = _whole(report.get("input_tokens")), _whole(report.get("output_tokens"))
    if inputs is None or output is None:
        assert usage is None
        return
    assert usage is not None
    _check_invariants(usage, inputs, output)


@given(chat_reports())
def test_any_chat_report_normalises_or_is_refused(report: dict[str, Any]) -> None:
    usage = chat_usage(report)
    inputs, output = _whole(report.get("prompt_tokens")), _whole(report.get("completion_tokens"))
    if inputs is None or output is None:
        assert usage is None
        return
    assert usage is not None
    _check_invariants(usage, inputs, output)
    reasoning = _whole(report["completion_tokens_details"].get("reasoning_tokens")) or 0
    total = _whole(report.get("total_tokens"))
    if reasoning and total == inputs + output + reasoning != inputs + output:
        assert usage.billable_tokens == total, "reasoning outside output is billed"


@given(
    st.integers(0, 10**7),
    st.integers(0, 10**7),
    st.integers(0, 10**7),
    st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
)
def test_anthropic_input_is_the_sum_and_the_last_output_wins(
    uncached: int, reads: int, writes: int, outputs: list[int]
) -> None:
    start = {
        "input_tokens": uncached,
        "cache_read_input_tokens": reads,
        "cache_creation_input_tokens": writes,
        "output_tokens": 1,
    }
    usage = anthropic_usage(start, [{"output_tokens": n} for n in outputs])
    assert usage is not None
    assert usage.input_tokens == uncached + reads + writes
    assert (usage.cached_input_tokens, usage.cache_write_tokens) == (reads, writes)
    assert usage.output_tokens == outputs[-1]


@given(st.text(max_size=200))
def test_estimate_never_below_one_token_per_four_bytes_of_ascii(text: str) -> None:
    tokens = estimate_text_tokens(text)
    ascii_chars = sum(1 for c in text if ord(c) < 128)
    assert tokens >= -(-ascii_chars // 4)
    assert tokens >= len(text) - ascii_chars
    assert tokens <= len(text)


def test_anthropic_compaction_iterations_are_summed() -> None:
    # Top-level counts are the last sampling's; the compaction step is billed too.
    final = {
        "input_tokens": 181,
        "cache_read_input_tokens": 0,
        "output_tokens": 8,
        "iterations": [
            {"input_tokens": 100, "output_tokens": 83, "cache_read_input_tokens": 55096},
            {"input_tokens": 181, "output_tokens": 8, "cache_read_input_tokens": 0},
        ],
    }
    usage = anthropic_usage({"input_tokens": 100, "output_tokens": 7}, [final])
    assert usage == Usage(input_tokens=55377, cached_input_tokens=55096, output_tokens=91)
    malformed = {**final, "iterations": [{"input_tokens": "x"}]}
    assert anthropic_usage({}, [malformed]) == Usage(input_tokens=181, output_tokens=8)
