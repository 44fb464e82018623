"""Token estimates for a call whose provider reported no usable usage.

The provider billed the call, so it is charged, but on an estimate, flagged ``estimated`` on the
usage event (alert ``unmetered``). No tokenizer covers every model a compatible server may host,
and the common ones fetch their vocabularies from the network at run time, so the estimate is
character-based and documented:

- ASCII text: one token per 4 characters (OpenAI's and Anthropic's published rule of thumb for
  English), rounded up;
- every other character: one token (close for CJK, generous for accented Latin and emoji);
- each message, the system prompt included: ``MESSAGE_TOKENS`` of framing, as OpenAI counts;
- each image: ``IMAGE_TOKENS`` (a 1024×1024 picture at high detail costs about 765 on OpenAI and
  about 1,400 on Anthropic).
"""

from __future__ import annotations

from assistants.types import CompletionRequest, Usage

MESSAGE_TOKENS = 3
IMAGE_TOKENS = 1000
_CHARS_PER_TOKEN = 4


def estimate_text_tokens(text: str) -> int:
    ascii_chars = len(text.encode("ascii", "ignore"))
    other = len(text) - ascii_chars
    return -(-ascii_chars // _CHARS_PER_TOKEN) + other


def estimate_prompt_tokens(request: CompletionRequest) -> int:
    total = 0
    if request.system_prompt:
        total += MESSAGE_TOKENS + estimate_text_tokens(request.system_prompt)
    for message in request.messages:
        total += MESSAGE_TOKENS + estimate_text_tokens(message.content)
        total += IMAGE_TOKENS * len(message.images)
    return total


def estimate_usage(request: CompletionRequest, answer: str, report: str | None = None) -> Usage:
    """The estimated usage of ``request`` answered with ``answer``; ``report`` is whatever
    unusable usage the provider did send, kept for the audit."""
    return Usage(
        input_tokens=estimate_prompt_tokens(request),
        output_tokens=estimate_text_tokens(answer),
        estimated=True,
        report=report,
    )


def usage_or_estimate(
    usage: Usage | None, request: CompletionRequest, answer: str, report: str | None
) -> Usage:
    """``usage`` when the provider's report was usable, else an estimate keeping the report."""
    return usage if usage is not None else estimate_usage(request, answer, report)
