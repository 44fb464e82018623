"""Argument types checked at the command boundary.

Each is an argparse ``type=``: a bad value raises :class:`argparse.ArgumentTypeError`, which the
parser turns into the command's usage line with the problem named, before anything is written.
"""

from __future__ import annotations

import argparse
import re

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
