"""How reports read in chat: periods, money in the billing currency, aligned tables.

Shared by ``/stats``, ``/assistant stats``, ``/alerts``, ``/audit`` and ``/export`` so that the
same figure is written the same way everywhere (a CSV re-read matches the chat reply).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from babel.numbers import format_percent

from admin_commands.registry import CommandContext
from core.i18n import Translator, lazy
from core.period import Period, parse_period
from storage.repositories.rollups import Sums

#: The first year ``core.period.parse_period`` takes a month of.
FIRST_YEAR = 2000
#: Costs are shown to the hundredth of a cent: a single call often costs less than a cent.
_PLACES = Decimal("0.0001")


def period_of(ctx: CommandContext, raw: str | None = None) -> Period:
    """The command's ``period`` argument (or ``raw``) as a :class:`Period`; a usage error
    naming the problem otherwise."""
    text = ctx.args.period if raw is None else raw
    early = re.fullmatch(r"\s*(\d{4})-(\d{2})\s*", text)
    if early and int(early[1]) < FIRST_YEAR:
        raise ctx.usage_error(
            lazy(
                "{value} is too early: reports cover months from {first}-01 on.",
                value=repr(text.strip()),
                first=FIRST_YEAR,
            )
        )
    try:
        return parse_period(text, ctx.deps.clock().date())
    except ValueError as exc:
        message = str(exc)
        raise ctx.usage_error(message[:1].upper() + message[1:] + ".") from None


def count_of(count: int, one: str, many: str | None = None) -> str:
    """``1 call``, ``2 calls``, ``1,200 calls``."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def describe(period: Period, t: Translator | None = None) -> str:
    """``last 30 days (04 Nov to 03 Dec 2026)`` or ``December 2026``, in ``t``'s language."""
    if t is None:
        if period.label.endswith("d"):
            return f"last {period.label[:-1]} days ({period.start:%d %b} to {period.end:%d %b %Y})"
        return f"{period.start:%B %Y}"
    if period.label.endswith("d"):
        return t(
            "last {days} days ({start} to {end})",
            days=period.label[:-1],
            start=t.date(period.start, "dd MMM"),
            end=t.date(period.end, "dd MMM y"),
        )
    return t.month(period.start.year, period.start.month)


def billing_amount(ctx: CommandContext, currency: str, micros: int) -> Decimal:
    """An amount in the billing currency (see :mod:`billing.conversion`)."""
    return ctx.deps.config.conversion.amount({currency: micros})


def cost(ctx: CommandContext, sums: Sums) -> Decimal:
    """The cost of ``sums`` in the billing currency (see :mod:`billing.conversion`)."""
    return ctx.deps.config.conversion.amount(sums.cost)


def decimal_str(amount: Decimal, t: Translator | None = None) -> str:
    """A cost to the hundredth of a cent, as ``--json`` gives it, or as ``t``'s language writes
    it (``0.0012`` / ``0,0012``; never grouped, like the JSON)."""
    exact = amount.quantize(_PLACES, rounding=ROUND_HALF_EVEN)
    return str(exact) if t is None else t.number(exact, "0.0000")


def percent_str(t: Translator, fraction: float | Decimal) -> str:
    """``0.125`` → ``12.5%`` / ``12,5 %`` / ``12,5 %``: the language's own percent format
    (its space before ``%``), with one decimal."""
    pattern = str(t.locale.percent_formats[None].pattern)
    last = pattern.rfind("0") + 1
    return str(format_percent(fraction, pattern[:last] + ".0" + pattern[last:], locale=t.locale))


def pairs(items: Sequence[tuple[str, str]]) -> list[str]:
    width = max(len(label) for label, _ in items)
    return [f"{label:<{width}}  {value}" for label, value in items]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; numbers (and money) right-aligned."""
    if not rows:
        return []
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    numeric = [all(_is_number(row[i]) for row in rows) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if num else str(c).ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


#: What numbers hold besides digits, in any language's format (``1,234.5``, ``1\u202f234,5``,
#: ``1.234,5``, ``12,5\xa0%``).
_NUMBER_MARKS = str.maketrans("", "", ",.%\u202f\xa0")


def _is_number(cell: str) -> bool:
    return cell.translate(_NUMBER_MARKS).lstrip("-").isdigit()


def code_block(lines: Sequence[str]) -> str:
    return "```\n" + "\n".join(lines) + "\n```"
