"""Provider usage reports, as servers really send them, normalised to :class:`Usage`.

One function per wire format (Responses, Chat Completions, Messages), written against the JSON
on the wire rather than an SDK model: SDK models grow required fields (``cache_write_tokens``
became one in 2026) that older servers, gateways and local runtimes never send.

Strict about what is billed, lenient about everything else:

- input and output counts are required (a non-negative whole number; ``12.0`` is accepted);
  without both the report is unusable and the caller estimates instead (``None`` here);
- every detail (cached input, cache writes, reasoning) is optional and 0 when absent, null,
  negative or not a number; fields we do not know are ignored;
- cached input never exceeds input, and cache writes never exceed the uncached rest (Azure AI
  Foundry has been seen reporting 161 cached of 7 prompt tokens);
- reasoning is counted in output whatever the server's convention: when ``total_tokens`` equals
  input + output + reasoning (xAI) or, without a total, when reasoning alone exceeds output,
  the server counted it outside output and it is added;
- Anthropic's cache reads and writes are reported beside ``input_tokens`` and added to it; the
  last ``message_delta`` revises any count of ``message_start``; with server-side compaction
  the top-level counts cover the last sampling only, so ``usage.iterations`` is summed.

The normalised :class:`Usage` keeps the server's report as JSON text (``report``), so any charge
can be audited against what the provider said.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from assistants.types import Usage


def responses_usage(raw: object) -> Usage | None:
    """The ``usage`` of a Responses API ``Response`` (``response.completed``)."""
    if not isinstance(raw, Mapping):
        return None
    inputs = _first_count(raw, "input_tokens", "prompt_tokens")
    output = _first_count(raw, "output_tokens", "completion_tokens")
    if inputs is None or output is None:
        return None
    input_details = raw.get("input_tokens_details")
    output_details = raw.get("output_tokens_details")
    return _normalised(
        raw,
        inputs=inputs,
        output=output,
        cached=_detail(input_details, "cached_tokens"),
        cache_write=_detail(input_details, "cache_write_tokens", "cache_creation_tokens"),
        reasoning=_detail(output_details, "reasoning_tokens"),
    )


def chat_usage(raw: object) -> Usage | None:
    """The ``usage`` of a Chat Completions answer or stream chunk, OpenAI and compatibles.

    DeepSeek reports cache hits as ``prompt_cache_hit_tokens``; OpenRouter and some gateways
    report cache writes in ``prompt_tokens_details``.
    """
    if not isinstance(raw, Mapping):
        return None
    inputs = _first_count(raw, "prompt_tokens", "input_tokens")
    output = _first_count(raw, "completion_tokens", "output_tokens")
    if inputs is None or output is None:
        return None
    prompt_details = raw.get("prompt_tokens_details")
    completion_details = raw.get("completion_tokens_details")
    cached = _detail(prompt_details, "cached_tokens") or _detail(raw, "prompt_cache_hit_tokens")
    reasoning = _detail(completion_details, "reasoning_tokens") or _detail(raw, "reasoning_tokens")
    return _normalised(
        raw,
        inputs=inputs,
        output=output,
        cached=cached,
        cache_write=_detail(prompt_details, "cache_write_tokens", "cache_creation_tokens"),
        reasoning=reasoning,
    )


def anthropic_usage(start: object, revisions: Sequence[object]) -> Usage | None:
    """``message_start``'s usage revised by every ``message_delta`` usage, in order.

    A count present (not null) in a later report replaces the earlier one: server tools revise
    ``input_tokens`` and the cache counts at the end of the message. ``message_start``'s output
    count is provisional (often 1): without a ``message_delta`` carrying the final one the
    report is unusable.
    """
    merged: dict[str, Any] = dict(start) if isinstance(start, Mapping) else {}
    final_output: int | None = None
    for revision in revisions:
        if isinstance(revision, Mapping):
            merged.update((k, v) for k, v in revision.items() if v is not None)
            revised = _count(revision.get("output_tokens"))
            final_output = final_output if revised is None else revised
    uncached = _count(merged.get("input_tokens"))
    output = final_output
    if uncached is None or output is None:
        return None
    cache_read = _detail(merged, "cache_read_input_tokens")
    cache_write = _detail(merged, "cache_creation_input_tokens")
    iterations = _iterations(merged.get("iterations"))
    if iterations is not None:
        # Server-side compaction samples more than once; the top-level counts are the last
        # sampling's only, and every iteration is billed.
        uncached, cache_read, cache_write, output = iterations
    report = {"message_start": start, "message_delta": list(revisions)}
    return Usage(
        input_tokens=uncached + cache_read + cache_write,
        cached_input_tokens=cache_read,
        output_tokens=output,
        # Thinking is inside output_tokens; few servers split it out.
        reasoning_tokens=min(
            _detail(merged.get("output_tokens_details"), "thinking_tokens"), output
        ),
        cache_write_tokens=cache_write,
        report=dump_report(report),
    )


def _iterations(raw: object) -> tuple[int, int, int, int] | None:
    """Summed (uncached input, cache reads, cache writes, output) of Anthropic's
    ``usage.iterations``, or None when absent or not all well-formed."""
    if not isinstance(raw, list) or not raw:
        return None
    sums = [0, 0, 0, 0]
    for item in raw:
        if not isinstance(item, Mapping):
            return None
        uncached, output = _count(item.get("input_tokens")), _count(item.get("output_tokens"))
        if uncached is None or output is None:
            return None
        sums[0] += uncached
        sums[1] += _detail(item, "cache_read_input_tokens")
        sums[2] += _detail(item, "cache_creation_input_tokens")
        sums[3] += output
    return sums[0], sums[1], sums[2], sums[3]


def dump_report(raw: object) -> str | None:
    """The report as compact JSON text, or None when there was none."""
    if raw is None:
        return None
    return json.dumps(raw, separators=(",", ":"), ensure_ascii=False, default=str)


def _normalised(
    raw: Mapping[str, Any],
    *,
    inputs: int,
    output: int,
    cached: int,
    cache_write: int,
    reasoning: int,
) -> Usage:
    cached = min(cached, inputs)
    cache_write = min(cache_write, inputs - cached)
    total = _count(raw.get("total_tokens"))
    if reasoning and (
        (total is not None and total == inputs + output + reasoning != inputs + output)
        or (total is None and reasoning > output)
    ):
        output += reasoning  # the server counted reasoning outside its output count
    return Usage(
        input_tokens=inputs,
        cached_input_tokens=cached,
        output_tokens=output,
        reasoning_tokens=min(reasoning, output),
        cache_write_tokens=cache_write,
        report=dump_report(raw),
    )


def _count(value: object) -> int | None:
    """A token count: a non-negative whole number (``12.0`` too), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _first_count(raw: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        found = _count(raw.get(key))
        if found is not None:
            return found
    return None


def _detail(details: object, *keys: str) -> int:
    """An optional count inside a details object: 0 when the object or the count is missing."""
    if not isinstance(details, Mapping):
        return 0
    found = _first_count(details, *keys)
    return found or 0
