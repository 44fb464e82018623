"""Honouring Slack's ``429 Retry-After`` for one reply.

Intermediate stream appends and message edits are optional: when Slack says "wait", we keep
buffering and skip the call rather than stall the model's stream. The final text, a file or a
command answer is required: we wait as long as Slack asks (up to a cap) and try again, so a rate
limit never loses the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from slack_sdk.errors import SlackApiError

T = TypeVar("T")
DEFAULT_RETRY_AFTER = 1.0


def retry_after(exc: SlackApiError) -> float | None:
    """Seconds Slack asked us to wait, or None when the error is not a rate limit."""
    response = exc.response
    status = getattr(response, "status_code", None)
    error = response.get("error") if hasattr(response, "get") else None
    if status != 429 and error != "ratelimited":
        return None
    headers = getattr(response, "headers", None) or {}
    for name, value in headers.items():
        if str(name).lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return max(float(raw), 0.0)
            except (TypeError, ValueError):
                break
    return DEFAULT_RETRY_AFTER


class RateLimiter:
    def __init__(
        self,
        *,
        max_wait: float = 30.0,
        max_attempts: int = 5,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._max_wait = max_wait
        self._max_attempts = max_attempts
        self._monotonic = monotonic
        self._sleep = sleep
        self._not_before = 0.0

    @property
    def ready(self) -> bool:
        return self._monotonic() >= self._not_before

    async def optional(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """Run ``call`` unless Slack asked us to wait; a 429 now is remembered, not raised."""
        if not self.ready:
            return None
        try:
            return await call()
        except SlackApiError as exc:
            delay = retry_after(exc)
            if delay is None:
                raise
            self._back_off(delay)
            return None

    async def required(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call``, waiting out any ``Retry-After`` first and between attempts."""
        attempt = 1
        while True:
            wait = self._not_before - self._monotonic()
            if wait > 0:
                await self._sleep(wait)
            try:
                return await call()
            except SlackApiError as exc:
                delay = retry_after(exc)
                if delay is None or attempt >= self._max_attempts:
                    raise
                self._back_off(delay)
                attempt += 1

    def _back_off(self, delay: float) -> None:
        self._not_before = self._monotonic() + min(delay, self._max_wait)
