"""The queue of a process's write transactions on SQLite, which has a single writer."""

from __future__ import annotations

import asyncio
from collections import deque


class WriterQueue:
    """One holder at a time; waiters are served in arrival order, with one exception.

    A transaction that comes *ahead* (short, and a user is waiting on it before anything shows:
    an update's claim, a reservation) is served before the ordinary ones queued, unless the
    oldest of those has already waited ``patience`` seconds. Under load this lets a turn start
    streaming while other turns' longer persist transactions wait their turn, and ``patience``
    bounds how long those can be passed over.

    The holder hands the queue straight to the next waiter on :meth:`release`, so no newcomer can
    slip in between.
    """

    def __init__(self, patience: float) -> None:
        self._patience = patience
        self._held = False
        self._ahead: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._behind: deque[tuple[float, asyncio.Future[None]]] = deque()

    @property
    def held(self) -> bool:
        return self._held

    async def acquire(self, *, ahead: bool = False) -> None:
        """Wait for the queue (bound the wait with ``asyncio.timeout`` if need be)."""
        if not self._held:
            self._held = True
            return
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[None] = loop.create_future()
        (self._ahead if ahead else self._behind).append((loop.time(), granted))
        try:
            await granted
        except BaseException:
            # Cancelled or timed out; if the queue was handed over meanwhile, pass it on.
            if granted.done() and not granted.cancelled():
                self.release()
            raise

    def release(self) -> None:
        """Hand the queue to the next waiter, or free it."""
        waiter = self._next()
        if waiter is None:
            self._held = False
        else:
            waiter.set_result(None)  # still held: now by the waiter

    def _next(self) -> asyncio.Future[None] | None:
        for waiting in (self._ahead, self._behind):
            while waiting and waiting[0][1].done():  # gave up waiting
                waiting.popleft()
        if self._behind and (
            not self._ahead
            or asyncio.get_running_loop().time() - self._behind[0][0] >= self._patience
        ):
            return self._behind.popleft()[1]
        if self._ahead:
            return self._ahead.popleft()[1]
        return None
