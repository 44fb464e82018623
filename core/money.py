"""Money as :class:`~decimal.Decimal` in Python, integer micro-units in storage."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

MICROS_PER_UNIT = 1_000_000
_MICRO = Decimal("0.000001")


def to_micros(amount: Decimal) -> int:
    """Round half-to-even to the micro-unit; floats are refused so they never creep in."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be Decimal, got {type(amount).__name__}")
    return int((amount * MICROS_PER_UNIT).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def from_micros(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS_PER_UNIT).quantize(_MICRO)


def format_money(micros: int, currency: str, places: int = 4) -> str:
    value = from_micros(micros).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return f"{value} {currency}"
