"""Conversation context: which recent messages fit the token budget.

Budgets here are *upper bounds*, not estimates: a byte-level BPE token is at least one byte, so
the UTF-8 length of a text bounds its token count. Reserving on a bound (and settling to the
provider's reported usage) is what lets concurrent turns never overdraw a balance.
"""

from __future__ import annotations

from collections.abc import Sequence

from assistants.types import ChatMessage

#: Per-message framing tokens (role markers, separators), generous for every provider.
MESSAGE_OVERHEAD = 8
#: Fixed framing of a request (system prompt wrapper, reply priming).
REQUEST_OVERHEAD = 16
#: An upper bound for one image at the providers' default detail settings.
IMAGE_TOKENS_BOUND = 2000


def text_bound(text: str) -> int:
    return len(text.encode("utf-8"))


def message_bound(message: ChatMessage) -> int:
    return text_bound(message.content) + MESSAGE_OVERHEAD + IMAGE_TOKENS_BOUND * len(message.images)


def request_bound(system_prompt: str | None, messages: Sequence[ChatMessage]) -> int:
    system = text_bound(system_prompt) + MESSAGE_OVERHEAD if system_prompt else 0
    return REQUEST_OVERHEAD + system + sum(message_bound(m) for m in messages)


def fit_context(
    system_prompt: str | None, history: Sequence[ChatMessage], new: ChatMessage, budget: int
) -> list[ChatMessage]:
    """The newest history messages that fit ``budget`` together with the system prompt and the
    new message (which are always kept), oldest first. A conversation never starts with an
    assistant message, so a leading one left by the cut is dropped too."""
    used = request_bound(system_prompt, [new])
    kept: list[ChatMessage] = []
    for message in reversed(history):
        cost = message_bound(message)
        if used + cost > budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    while kept and kept[0].role == "assistant":
        kept.pop(0)
    return [*kept, new]
