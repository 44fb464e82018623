"""CSV cells a spreadsheet opens as data, never as a formula (DESIGN §8, OWASP "CSV injection").

Ledger notes, library titles and texts (which a member can steer through the prompt), invoice
descriptions and tenant names are typed by people: a cell such as ``=HYPERLINK(...)`` would run
as a formula when an operator opens the export in Excel or LibreOffice. A text cell starting
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is therefore written with a leading
``'``, which spreadsheets read as "this is text". Numbers stay numbers: an ``int`` or
``Decimal`` (a negative ledger amount) is never touched, nor is text that is just a plain
decimal number (``-5.00``, as the invoice amounts are written), which no spreadsheet evaluates.
Every CSV we produce goes through :func:`safe_cell` (or :func:`safe_row`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

#: The characters a spreadsheet takes as the start of a formula (or that hide one).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: Text that is only a number, ``-5`` or ``-5.00``: a spreadsheet reads it as that number.
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def safe_cell(value: Any) -> Any:
    """``value`` as it may go into a CSV cell: formula-looking text prefixed with ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        if _PLAIN_NUMBER.fullmatch(value):
            return value
        return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]
