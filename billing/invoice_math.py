"""Invoice arithmetic: each line rounded to the currency's minor unit (the cent), VAT computed
once on the subtotal and rounded the same way. Pure functions on micro-units."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from billing.amounts import minor_places
from core.money import MICROS_PER_UNIT, from_micros, to_micros

PPM = 1_000_000


def round_to_minor(amount: Decimal, currency: str) -> int:
    """``amount`` (currency units) rounded half-up to the minor unit, in micros."""
    step = Decimal(1).scaleb(-minor_places(currency))
    return to_micros(amount.quantize(step, rounding=ROUND_HALF_UP))


def line_amount(quantity: int, unit_price_micros: int, currency: str) -> int:
    return round_to_minor(from_micros(unit_price_micros) * quantity, currency)


def ppm_of(rate: Decimal) -> int:
    """``Decimal("0.20")`` → ``200000``."""
    return int((rate * PPM).to_integral_value())


def rate_of(ppm: int) -> Decimal:
    """``200000`` → ``Decimal("0.20")`` (at least two places, more when the rate needs them)."""
    rate = Decimal(ppm) / PPM
    return rate.quantize(Decimal("0.01")) if ppm % 10_000 == 0 else rate.normalize()


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal_micros: int
    vat_micros: int
    total_micros: int


def totals(line_amounts: Iterable[int], vat_rate_ppm: int, currency: str) -> Totals:
    subtotal = sum(line_amounts)
    vat = round_to_minor(from_micros(subtotal) * vat_rate_ppm / PPM, currency)
    return Totals(subtotal, vat, subtotal + vat)


def scaled(micros: int, factor_ppm: int, currency: str) -> int:
    """``micros`` × a ppm factor (a plan's markup), rounded to the minor unit."""
    return round_to_minor(Decimal(micros) * factor_ppm / PPM / MICROS_PER_UNIT, currency)
