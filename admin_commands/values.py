"""Argument types checked at the command boundary.

Each is an argparse ``type=``: a bad value raises :class:`argparse.ArgumentTypeError`, which the
parser turns into the command's usage line with the problem named, before anything is written.
"""

from __future__ import annotations

import argparse
import re
from decimal import Decimal, InvalidOperation

from core.identity import parse_identity

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def slug(raw: str) -> str:
    """2-63 lowercase letters, digits and '-', starting with a letter or digit."""
    value = raw.strip().lower()
    if not SLUG_RE.match(value):
        raise argparse.ArgumentTypeError(
            f"invalid slug {raw!r}: use 2-63 lowercase letters, digits and '-'"
        )
    return value


def positive_int(raw: str) -> int:
    """A whole number above zero; ``1_000`` and ``1,000`` are accepted."""
    try:
        value = int(raw.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{raw!r} must be positive")
    return value


def item_id(raw: str) -> int:
    """A library item number as users see it."""
    if not raw.isascii() or not raw.isdigit():
        raise argparse.ArgumentTypeError(f"{raw!r} is not an item number")
    return positive_int(raw)


def identity(raw: str) -> tuple[str, str]:
    """``CHANNEL:ID`` as ``(channel, id)``."""
    try:
        return parse_identity(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- billing: prices, currencies, plans ---------------------------------------------------------

PLAN_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,15}$")
CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")
_YES = frozenset({"yes", "y", "true", "on", "1"})
_NO = frozenset({"no", "n", "false", "off", "0"})


def plan_slug(raw: str) -> str:
    """A slug of 2-16 characters (a tenant's plan column holds it)."""
    value = raw.strip().lower()
    if not PLAN_SLUG_RE.match(value):
        raise argparse.ArgumentTypeError(
            f"invalid plan {raw!r}: use 2-16 lowercase letters, digits and '-'"
        )
    return value


def amount(raw: str) -> Decimal:
    """A money amount of zero or more, ``15``, ``15.00`` or ``1,500.50`` (never a float)."""
    text = raw.strip().replace(",", "").replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an amount like 15.00") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{raw!r} must be an amount of zero or more")
    if value.as_tuple().exponent < -6:  # type: ignore[operator]
        raise argparse.ArgumentTypeError(f"{raw!r} has more than 6 decimal places")
    return value


def currency(raw: str) -> str:
    """A three-letter ISO 4217 code, e.g. EUR."""
    if not CURRENCY_RE.match(raw.strip()):
        raise argparse.ArgumentTypeError(f"{raw!r} is not a currency code like EUR")
    return raw.strip().upper()


def ratio(raw: str) -> Decimal:
    """A multiplier above zero such as a markup of 1.30."""
    value = amount(raw)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{raw!r} must be above zero")
    return value


def yes_no(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise argparse.ArgumentTypeError(f"{raw!r} is not yes or no")


def non_negative_int(raw: str) -> int:
    """A whole number of zero or more."""
    try:
        value = int(raw.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{raw!r} must be zero or more")
    return value


def quota(raw: str) -> int | None:
    """Tokens per month, or ``none`` to remove the quota."""
    if raw.strip().lower() in ("none", "off", "unlimited"):
        return None
    return positive_int(raw)
