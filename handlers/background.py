"""Background tasks a channel starts after acknowledging an update (webhooks must answer fast),
kept so that shutdown can let them finish instead of cutting turns in half."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundTasks:
    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        return self.track(asyncio.create_task(coro, name=name))

    def track(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """Keep a task started elsewhere (e.g. by aiogram's polling) until it is done."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _pending(self) -> set[asyncio.Task[Any]]:
        # The task calling drain (say, one stopping the service) must not wait for itself.
        current = asyncio.current_task()
        return {t for t in self._tasks if t is not current and not t.done()}

    async def drain(self, seconds: float) -> bool:
        """Wait until every task has finished; False if ``seconds`` ran out first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while pending := self._pending():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.wait(pending, timeout=remaining)
        return True

    async def shutdown(self, seconds: float) -> None:
        """Drain for up to ``seconds``, then cancel what is left (and wait for it to unwind)."""
        if await self.drain(seconds):
            return
        pending = self._pending()
        log.warning("%s: cancelling %d tasks still running at shutdown", self._owner, len(pending))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
