"""Money at the Stripe boundary: Stripe counts in a currency's minor unit (cents), we in micros.

A price that a currency's minor unit cannot express (``5.005`` EUR) is refused where prices are
set, so a conversion here is always exact.
"""

from __future__ import annotations

from decimal import Decimal

from core.money import MICROS_PER_UNIT, from_micros

#: Currencies Stripe charges in whole units (no cents); see Stripe's "zero-decimal currencies".
ZERO_DECIMAL = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
        "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
        # Telegram Stars: whole Stars only (never charged through Stripe).
        "XTR",
    }
)  # fmt: skip


def minor_places(currency: str) -> int:
    return 0 if currency.upper() in ZERO_DECIMAL else 2


def _micros_per_minor(currency: str) -> int:
    return MICROS_PER_UNIT // int(10 ** minor_places(currency))


def is_chargeable(micros: int, currency: str) -> bool:
    """Whether Stripe can charge exactly this amount (a whole number of minor units)."""
    return micros % _micros_per_minor(currency) == 0


def to_minor(micros: int, currency: str) -> int:
    step = _micros_per_minor(currency)
    if micros % step:
        raise ValueError(f"{from_micros(micros)} {currency} is not a whole number of minor units")
    return micros // step


def from_minor(amount: int, currency: str) -> int:
    return amount * _micros_per_minor(currency)


def amount_str(micros: int, currency: str) -> str:
    """``15000000, "EUR"`` → ``"15.00"``: the currency's own decimal places."""
    places = minor_places(currency)
    return str(from_micros(micros).quantize(Decimal(1).scaleb(-places)))


def price_label(micros: int, currency: str) -> str:
    return f"{amount_str(micros, currency)} {currency.upper()}"
