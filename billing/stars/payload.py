"""The invoice payload: which ``payments`` row an invoice sells.

Telegram hands it back in ``pre_checkout_query`` and ``successful_payment`` (1-128 bytes, never
shown to the user). It carries the row id only: everything billed is read from our row.
"""

from __future__ import annotations

import re

_PREFIX = "sb-pay:"
_FORMAT = re.compile(r"^sb-pay:(\d{1,18})$")


def payload_of(payment_id: int) -> str:
    return f"{_PREFIX}{payment_id}"


def payment_id_of(payload: str | None) -> int | None:
    """The row id in a payload of ours; None for anything else."""
    found = _FORMAT.match(payload or "")
    return int(found.group(1)) if found else None
