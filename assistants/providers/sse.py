"""Server-sent events (``text/event-stream``) decoding, as the WHATWG HTML standard specifies it.

:class:`SSEDecoder` takes the body's bytes in whatever chunks the network delivers and returns
the complete events they hold. The rules (HTML "Interpreting an event stream"):

- Lines end at CRLF, LF or CR, also when a CRLF pair is split between two chunks. Nothing else
  ends a line: U+2028, U+0085 and friends, which JSON may carry raw inside strings, are data
  (``str.splitlines``, and so ``httpx``'s ``aiter_lines``, would split on them).
- A blank line dispatches the event. An event without any ``data`` field is not dispatched.
- ``data`` lines are joined with ``\\n``; ``event`` sets the type (default ``"message"``);
  ``id`` sets the last event id (kept across events, ignored when it contains NUL); ``retry``
  and unknown fields are ignored; a line starting with ``:`` is a comment. One space after the
  colon is dropped; a line without a colon is a field name with an empty value.
- Text is UTF-8, invalid bytes become U+FFFD; one byte order mark at the very start is skipped.
- At the end of the stream an event that was not finished by a blank line is discarded (the
  OpenAI SDK's own decoder drops it too), so there is nothing to flush: the caller just stops
  feeding.

It is deliberately small and allocation-light: one pass of ``bytes.splitlines`` per chunk and
one ``decode`` per event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

_BOM = b"\xef\xbb\xbf"
_CR = 0x0D
_LF = 0x0A
_COLON = 0x3A


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    data: str
    event: str = "message"
    id: str = ""


class SSEDecoder:
    """Incremental event-stream decoder: :meth:`feed` chunks of the body, get complete events."""

    __slots__ = ("_at_start", "_data", "_event", "_last_id", "_partial", "_skip_lf")

    def __init__(self) -> None:
        #: Pieces of a line whose end has not arrived yet.
        self._partial: list[bytes] = []
        #: The previous chunk ended with CR: an LF opening the next one finishes that CRLF.
        self._skip_lf = False
        #: Nothing but (a prefix of) the byte order mark fed yet; it waits in ``_partial``.
        self._at_start = True
        self._data: list[bytes] = []
        self._event = b""
        self._last_id = ""

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events completed by ``chunk`` (which may end in the middle of a line)."""
        if self._at_start:
            chunk = self._strip_bom(chunk)
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        lines = chunk.splitlines()
        last = chunk[-1]
        finished = last in (_LF, _CR)
        if not finished and len(lines) == 1:
            self._partial.append(chunk)  # no line ends here: nothing to join yet
            return []
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = b"".join(self._partial)
            self._partial = []
        if finished:
            self._skip_lf = last == _CR
        else:
            self._partial.append(lines.pop())
        events: list[ServerSentEvent] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _strip_bom(self, chunk: bytes) -> bytes:
        head = b"".join((*self._partial, chunk))
        self._partial = []
        if len(head) < len(_BOM) and _BOM.startswith(head):
            if head:
                self._partial.append(head)
            return b""
        self._at_start = False
        return head[len(_BOM) :] if head.startswith(_BOM) else head

    def _line(self, line: bytes) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == _COLON:
            return None
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id" and b"\0" not in value:
            self._last_id = value.decode("utf-8", "replace")
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], b""
        if not data:
            return None
        return ServerSentEvent(
            data=(data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", "replace"),
            event=event.decode("utf-8", "replace") if event else "message",
            id=self._last_id,
        )


async def json_objects(chunks: AsyncIterable[bytes]) -> AsyncIterator[dict[str, Any]]:
    """The JSON object carried by each event of an LLM API stream, in order.

    ``data: [DONE]`` (OpenAI's terminator, not part of every server's protocol) ends the stream;
    events with empty data and data that is not an object are skipped; data that is not JSON
    raises :class:`json.JSONDecodeError`.
    """
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            data = event.data
            if data.startswith("[DONE]"):
                return
            if not data.strip():
                continue
            value = json.loads(data)
            if isinstance(value, dict):
                yield value
