"""Time as an injected dependency: every "now" in the product comes from a :data:`Clock`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def month_start(at: datetime) -> datetime:
    """Midnight of the first day of ``at``'s month, in ``at``'s time zone."""
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
