"""The terminal channel: lines from a text stream through the full pipeline."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TextIO

from core.envelope import InboundMessage, LinkButton, OutboundFile, ReplyStream
from core.i18n import Translator
from handlers.pipeline import Pipeline

CHANNEL = "console"


def console_scope(tenant_slug: str) -> str:
    return f"tenant:{tenant_slug}"


def plain_text(text: str) -> str:
    """A chat reply for a terminal: the Markdown code fences around tables go (a terminal
    shows them as they are, and its font is fixed-width anyway)."""
    return "\n".join(line for line in text.split("\n") if line.strip() != "```")


class ConsoleSink:
    """Writes streamed deltas as they arrive and saves files under ``files_dir``."""

    def __init__(
        self, out: TextIO, save_file: Callable[[OutboundFile], str], t: Translator | None = None
    ) -> None:
        self._out = out
        self._save_file = save_file
        #: The terminal's language (DEFAULT_LANGUAGE, as the shell's); English without it.
        self._t = t

    async def send_text(self, text: str) -> None:
        self._write(plain_text(text) + "\n")

    async def send_buttons(self, text: str, buttons: Sequence[LinkButton]) -> None:
        """A terminal has no buttons: each link on its own line, to open or copy."""
        self._write(text + "\n" + "".join(f"  {b.label}: {b.url}\n" for b in buttons))

    async def send_file(self, file: OutboundFile) -> None:
        path, t = self._save_file(file), self._t
        self._write((t("[file saved: {path}]", path=path) if t else f"[file saved: {path}]") + "\n")

    def open_stream(self) -> ReplyStream:
        return _ConsoleStream(self)

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


class _ConsoleStream:
    def __init__(self, sink: ConsoleSink) -> None:
        self._sink = sink
        self._shown = False

    async def append(self, delta: str) -> None:
        self._shown = True
        self._sink._write(delta)

    async def finish(self, text: str) -> None:
        # The text was streamed already; only finish the line (or print it if nothing streamed).
        self._sink._write("\n" if self._shown else text + "\n")

    async def abort(self, message: str) -> None:
        self._sink._write(("\n" if self._shown else "") + message + "\n")


async def run_console(
    pipeline: Pipeline,
    tenant_slug: str,
    user: str,
    *,
    stdin: TextIO,
    sink: ConsoleSink,
    prompt: bool,
) -> int:
    """Handle each non-empty input line as one message; returns the number handled."""
    handled = 0
    loop = asyncio.get_running_loop()
    while True:
        if prompt:
            sink._write("> ")
        line = await loop.run_in_executor(None, stdin.readline)
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        message = InboundMessage(
            channel=CHANNEL,
            scope_key=console_scope(tenant_slug),
            chat_key=f"{tenant_slug}:{user}",
            user_id=user,
            user_name=user,
            text=text,
            received_at=datetime.now(UTC),
            is_private=True,
        )
        await pipeline.handle(message, sink)
        handled += 1
    return handled


def default_stdin() -> TextIO:
    return sys.stdin
