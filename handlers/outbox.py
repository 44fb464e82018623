"""Messages to chats outside of any turn: a payment landed, a renewal failed.

The running channels register how to reach one of their chats (``sink_for``); notices are
delivered in the background, after the change they report has been committed, and a failure
to deliver one is logged, never retried into a second copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from billing.notices import Notice
from core.envelope import ChatAddress, LinkButton, OutboundFile
from handlers.background import BackgroundTasks

log = logging.getLogger(__name__)


class NoticeSink(Protocol):
    """What a notice is written to: a chat's reply sink, or an e-mail being composed."""

    async def send_file(self, file: OutboundFile) -> None: ...

    async def send_text(self, text: str) -> None: ...

    async def send_buttons(self, text: str, buttons: Sequence[LinkButton]) -> None: ...


SinkFactory = Callable[[ChatAddress], NoticeSink]


class Outbox:
    def __init__(self) -> None:
        self._channels: dict[str, SinkFactory] = {}
        self._tasks = BackgroundTasks("outbox")
        self._open = True

    def register(self, channel: str, sink_for: SinkFactory) -> None:
        self._channels[channel] = sink_for

    def reaches(self, channel: str) -> bool:
        """Whether this process can deliver to ``channel`` (it serves it, or it is e-mail)."""
        return channel in self._channels

    @property
    def accepting(self) -> bool:
        """False once the process is stopping: work that would need a notice should wait for
        another process (Stripe redelivers a webhook answered 503)."""
        return self._open

    def close(self) -> None:
        self._open = False

    def post(self, notices: Sequence[Notice]) -> None:
        """Deliver in the background (a webhook is answered at once)."""
        if notices:
            self._tasks.spawn(self._deliver_all(list(notices)), name="outbox")

    async def _deliver_all(self, notices: list[Notice]) -> None:
        for notice in notices:
            await self.deliver(notice)

    async def deliver(self, notice: Notice) -> bool:
        address = notice.address
        sink_for = self._channels.get(address.channel)
        if sink_for is None:
            log.info("no running %s channel to tell %s", address.channel, address.chat_key)
            return False
        try:
            sink = sink_for(address)
            for file in notice.files:
                await sink.send_file(file)
            if notice.buttons:
                await sink.send_buttons(notice.text, notice.buttons)
            else:
                await sink.send_text(notice.text)
        except Exception:
            log.exception("could not tell %s chat %s", address.channel, address.chat_key)
            return False
        return True

    async def drain(self, seconds: float) -> bool:
        return await self._tasks.drain(seconds)
