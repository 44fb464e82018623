"""A reply sink that records everything it is given: the pipeline tests read replies from it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from core.envelope import LinkButton, OutboundFile, ReplyStream


@dataclass(slots=True)
class RecordingSink:
    """Keeps texts, link buttons, files and streamed deltas in order of arrival."""

    texts: list[str] = field(default_factory=list)
    files: list[OutboundFile] = field(default_factory=list)
    deltas: list[str] = field(default_factory=list)
    #: Link buttons sent with a text (the text itself is in ``texts``).
    buttons: list[LinkButton] = field(default_factory=list)
    on_delta: Callable[[str], None] | None = None

    async def send_text(self, text: str) -> None:
        self.texts.append(text)

    async def send_buttons(self, text: str, buttons: Sequence[LinkButton]) -> None:
        self.texts.append(text)
        self.buttons.extend(buttons)

    async def send_file(self, file: OutboundFile) -> None:
        self.files.append(file)

    def open_stream(self) -> ReplyStream:
        return _RecordingStream(self)


@dataclass(slots=True)
class _RecordingStream:
    sink: RecordingSink

    async def append(self, delta: str) -> None:
        self.sink.deltas.append(delta)
        if self.sink.on_delta is not None:
            self.sink.on_delta(delta)

    async def finish(self, text: str) -> None:
        self.sink.texts.append(text)

    async def abort(self, message: str) -> None:
        self.sink.texts.append(message)
