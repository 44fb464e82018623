"""Stars as money: currency ``XTR``, whole Stars, kept in micro-units like every amount.

A Star has no fraction: ``total_amount`` in the Bot API counts whole Stars, and a payment of
``n`` Stars is stored as ``n × 1,000,000`` micro-units of ``XTR``, its own currency. Totals in
the billing currency convert with ``STARS_TO_BILLING_RATE``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from core.money import MICROS_PER_UNIT

STARS_CURRENCY: Final = "XTR"
#: ``payments.provider`` of a Stars payment.
STARS_PROVIDER: Final = "telegram_stars"
#: Telegram's one subscription period (Bot API: ``subscription_period`` must be 30 days).
SUBSCRIPTION_PERIOD_SECONDS: Final = 2_592_000


def stars_to_micros(stars: int) -> int:
    if stars < 0:
        raise ValueError("a number of Stars is never negative")
    return stars * MICROS_PER_UNIT


def micros_to_stars(micros: int) -> int:
    """The whole Stars ``micros`` of XTR are; ValueError when they are not whole."""
    stars, rest = divmod(micros, MICROS_PER_UNIT)
    if rest:
        raise ValueError(f"{micros} micro-units of XTR are not a whole number of Stars")
    return stars


def stars_in_billing_micros(stars_micros: int, rate: Decimal) -> int:
    """XTR micro-units worth in the billing currency at ``rate`` (billing units per Star),
    rounded half-up to the micro-unit."""
    value = Decimal(stars_micros) * rate
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def stars_label(stars: int) -> str:
    """``1,500 Stars``."""
    return f"{stars:,} Star" + ("" if stars == 1 else "s")
