"""The database check behind ``/healthz``, answered within a deadline whatever the database does.

A check that waits on the database waits as long as the database makes it: SQLite locked by
another connection keeps ``BEGIN`` waiting for the whole busy timeout, an exhausted pool keeps
it waiting for the pool timeout. A load balancer probing ``/healthz`` needs an answer in a
couple of seconds, so the probe runs in a task of its own and the request stops waiting for it
at the deadline. Cancelling would not help: closing the session waits on the same stuck
connection. The late probe finishes (or fails) on its own; until it does, further checks share
it instead of queueing more connections behind it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: Leaves room for the HTTP round trip within the 2 s a probe is expected to take at most.
DEFAULT_TIMEOUT_SECONDS = 1.5


class DatabaseCheck:
    def __init__(
        self, probe: Callable[[], Awaitable[None]], timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        self._probe = probe
        self._timeout = timeout
        self._running: asyncio.Task[bool] | None = None

    async def healthy(self) -> bool:
        """True if the probe succeeded within the deadline; a failure or a timeout is logged."""
        task = self._running
        if task is None or task.done():
            task = self._running = asyncio.create_task(self._run(), name="healthz-probe")
        done, _ = await asyncio.wait({task}, timeout=self._timeout)
        if not done:
            log.warning("health check: database did not answer within %ss", self._timeout)
            return False
        return task.result()

    async def _run(self) -> bool:
        try:
            await self._probe()
        except Exception as exc:
            # The exception's text may carry the database URL; its type says enough here.
            log.warning("health check failed: %s", type(exc).__name__)
            return False
        return True

    async def aclose(self) -> None:
        """Cancel a probe still waiting on the database (at shutdown), waiting for it no longer
        than for an answer."""
        task = self._running
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=self._timeout)
