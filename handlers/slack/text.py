"""Text shaping for Slack: splitting at message limits without breaking code blocks, escaping
plain ``text``, and spelling command mentions the Slack way (``/help`` → ``/sb help``).

Kept free of I/O so the sink's pacing logic and these rules can be reasoned about separately.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

FENCE = "```"
#: Room kept free at the end of a part for a closing fence (``\n```\n``).
FENCE_RESERVE = 5


def find_cut(text: str, limit: int, start: int = 0) -> int:
    """Where to end a part of at most ``limit`` characters, never before ``start``.

    Prefers a paragraph break, then a line break, then a space in the second half of the window,
    so parts end at natural boundaries; falls back to a hard cut at ``limit``.
    """
    if len(text) <= limit:
        return len(text)
    floor = max(start, limit // 2)
    for separator in ("\n\n", "\n", " "):
        index = text.rfind(separator, floor, limit)
        if index > start:
            return index + (len(separator) if separator == " " else 0)
    return max(limit, start)


def open_fence(text: str) -> str | None:
    """The info string (possibly ``""``) of a code fence left open at the end of ``text``."""
    opened: str | None = None
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(FENCE):
            opened = stripped[len(FENCE) :].strip() if opened is None else None
    return opened


def split_text(text: str, limit: int) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` characters.

    A code block cut in two is closed at the end of one part and reopened (same language) at the
    start of the next, so every message renders on its own.
    """
    if limit <= FENCE_RESERVE * 4:
        raise ValueError("limit too small")
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = find_cut(rest, limit - FENCE_RESERVE)
        head, rest = rest[:cut], rest[cut:]
        language = open_fence(head)
        if language is not None:
            head = head.rstrip("\n") + "\n" + FENCE
            rest = f"{FENCE}{language}\n" + rest.lstrip("\n")
        else:
            rest = rest.lstrip("\n")
        parts.append(head.rstrip())
    parts.append(rest)
    return parts


def escape(text: str) -> str:
    """Slack's plain ``text`` reserves ``&``, ``<`` and ``>`` for its own markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class CommandSpeller:
    """Rewrites ``/help``, ``/start CODE``… in our replies as ``/sb help``, ``/sb start CODE``.

    The command registry and the pipeline speak Telegram-style commands; in Slack they are
    subcommands of the one slash command, and a reply telling a user to send ``/start`` would
    point at a command that does not exist there.
    """

    def __init__(self, slash_command: str, command_names: Iterable[str]) -> None:
        names = sorted({n.lower() for n in command_names}, key=len, reverse=True)
        self._prefix = slash_command
        self._pattern = (
            re.compile(
                r"(?<![\w/.:@-])/(" + "|".join(map(re.escape, names)) + r")(?![\w-])", re.IGNORECASE
            )
            if names
            else None
        )

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: f"{self._prefix} {m.group(1)}", text)
