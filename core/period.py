"""Reporting periods: ``7d``, ``30d``, ``90d`` (ending today) or a calendar month ``YYYY-MM``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

_DAYS = re.compile(r"^(\d{1,3})d$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
PERIOD_HELP = "a period is 7d, 30d, 90d or a month YYYY-MM"
WINDOWS = (7, 30, 90)


@dataclass(frozen=True, slots=True)
class Period:
    """Whole UTC days from ``start`` to ``end``, both included."""

    start: date
    end: date
    label: str

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(n) for n in range((self.end - self.start).days + 1)]


def month_bounds(year: int, month: int) -> tuple[date, date]:
    first = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    return first, following - timedelta(days=1)


def parse_period(text: str, today: date) -> Period:
    """``"30d"`` → the 30 days ending ``today``; ``"2026-10"`` → that month. ValueError naming
    the problem otherwise (a month after this one, ``2026-13``, ``12d``...)."""
    value = text.strip().lower()
    if match := _DAYS.match(value):
        days = int(match.group(1))
        if days not in WINDOWS:
            raise ValueError(f"{text!r} is not a period ({PERIOD_HELP})")
        return Period(today - timedelta(days=days - 1), today, value)
    if match := _MONTH.match(value):
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12 or year < 2000:
            raise ValueError(f"{text!r} is not a month ({PERIOD_HELP})")
        first, last = month_bounds(year, month)
        if first > today:
            raise ValueError(f"{text!r} has not started yet")
        return Period(first, last, value)
    raise ValueError(f"{text!r} is not a period ({PERIOD_HELP})")
