"""PNG charts for ``/stats``, drawn with matplotlib's Agg backend (no display needed).

Rendering takes tens of milliseconds of CPU: callers run these functions in a worker thread
(``asyncio.to_thread``) so the event loop keeps serving chats meanwhile. Each call builds its
own ``Figure`` (not ``pyplot``), which keeps them safe to run in parallel threads.

matplotlib is imported on the first chart, not with the module: it costs about 0.4 s and 40 MB,
which a process that never draws (most of them) should not pay at start-up.

Given a :class:`~core.i18n.Translator` (``t``), the legend, the axis labels and the dates on the
axis are in its language; the title comes translated from the caller.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from core.i18n import N_, Translator

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTH, HEIGHT, DPI = 9.0, 4.8, 100
INPUT_COLOUR, OUTPUT_COLOUR, COST_COLOUR = "#4C72B0", "#8FB0DE", "#DD8452"


#: Decimal places of costs, in tables and on charts alike (``admin_commands.reports``).
COST_PLACES = 4
#: The smallest cost axis: ticks of a tenth of a cent rather than 0.00016.
_MIN_COST_AXIS = 0.0005


def _thousands(value: float, _position: int) -> str:
    return f"{value:,.0f}"


def _money_tick(value: float, _position: int) -> str:
    """A cost tick with 2 to 4 decimals: ``0.50``, ``0.0002``."""
    text = f"{value:,.{COST_PLACES}f}"
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.rstrip('0').ljust(2, '0')}"


def cost_label(value: Decimal) -> str:
    """A cost printed by a bar, as tables print it (4 decimals)."""
    return f"{value.quantize(Decimal(1).scaleb(-COST_PLACES)):,}"


def _t(t: Translator | None, message: str, **values: object) -> str:
    """``message`` in ``t``'s language (as it is without one)."""
    if t is None:
        return message.format_map(values) if values else message
    return t(message, **values)


def _day(t: Translator | None, day: date) -> str:
    """``04 Dec`` / ``04 déc.`` / ``04 Dez.``."""
    return day.strftime("%d %b") if t is None else t.date(day, "dd MMM")


def _month(t: Translator | None, first: date) -> str:
    """``Nov 26`` / ``nov. 26`` / ``Nov. 26``."""
    return first.strftime("%b %y") if t is None else t.date(first, "MMM yy")


def _png(figure: Figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def daily_usage(
    title: str,
    days: Sequence[date],
    input_tokens: Sequence[int],
    output_tokens: Sequence[int],
    cost: Sequence[Decimal],
    currency: str,
    t: Translator | None = None,
) -> bytes:
    """Input and output tokens as stacked bars per day, cost per day as a line on its own axis."""
    return _png(daily_usage_figure(title, days, input_tokens, output_tokens, cost, currency, t))


def daily_usage_figure(
    title: str,
    days: Sequence[date],
    input_tokens: Sequence[int],
    output_tokens: Sequence[int],
    cost: Sequence[Decimal],
    currency: str,
    t: Translator | None = None,
) -> Figure:
    """The figure :func:`daily_usage` draws."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    figure = Figure(figsize=(WIDTH, HEIGHT))
    tokens_axis = figure.add_subplot()
    positions = list(range(len(days)))
    tokens_axis.bar(positions, input_tokens, color=INPUT_COLOUR, label=_t(t, N_("input tokens")))
    tokens_axis.bar(
        positions,
        output_tokens,
        bottom=input_tokens,
        color=OUTPUT_COLOUR,
        label=_t(t, N_("output tokens")),
    )
    tokens_axis.yaxis.set_major_formatter(FuncFormatter(_thousands))
    # Headroom above the tallest bar keeps the legend off the data.
    tallest = max((i + o for i, o in zip(input_tokens, output_tokens, strict=True)), default=0)
    tokens_axis.set_ylim(0, tallest * 1.3 or 1)
    tokens_axis.set_ylabel(_t(t, N_("tokens")))
    step = max(1, len(days) // 10)
    # Count the ticks back from the last day, so the axis always names the last bar.
    ticked = positions[::-1][::step][::-1]
    tokens_axis.set_xticks(ticked, [_day(t, days[i]) for i in ticked])
    tokens_axis.set_xlim(-0.6, len(days) - 0.4)
    cost_axis = tokens_axis.twinx()
    # Steps, not a slope: a day's cost is that day's, so an idle day before a busy one stays
    # flat instead of ramping up.
    cost_axis.plot(
        positions,
        [float(c) for c in cost],
        color=COST_COLOUR,
        marker=".",
        drawstyle="steps-mid",
        label=_t(t, N_("cost")),
    )
    cost_axis.set_ylabel(_t(t, N_("cost ({currency})"), currency=currency))
    cost_axis.set_ylim(0, max(float(max(cost, default=0)) * 1.3, _MIN_COST_AXIS))
    cost_axis.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 5, 10]))
    cost_axis.yaxis.set_major_formatter(FuncFormatter(_money_tick))
    handles = tokens_axis.get_legend_handles_labels()
    cost_handles = cost_axis.get_legend_handles_labels()
    tokens_axis.legend(
        handles[0] + cost_handles[0], handles[1] + cost_handles[1], loc="upper left", ncols=3
    )
    tokens_axis.set_title(title)
    return figure


def ranked_bars(title: str, labels: Sequence[str], values: Sequence[Decimal], unit: str) -> bytes:
    """Horizontal bars, largest on top, each labelled with its value."""
    return _png(ranked_bars_figure(title, labels, values, unit))


def ranked_bars_figure(
    title: str, labels: Sequence[str], values: Sequence[Decimal], unit: str
) -> Figure:
    """The figure :func:`ranked_bars` draws."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH, max(2.5, 0.45 * len(labels) + 1.2)))
    axis = figure.add_subplot()
    order = list(range(len(labels)))[::-1]
    numbers = [float(values[i]) for i in order]
    # Positions, then the labels as tick text: labels that read as numbers or dates would
    # otherwise make matplotlib log about "categorical units".
    bars = axis.barh(range(len(order)), numbers, color=COST_COLOUR)
    axis.set_yticks(range(len(order)), [labels[i] for i in order])
    axis.bar_label(
        bars, labels=[f"{cost_label(values[i])} {unit}" for i in order], padding=3, fontsize=8
    )
    axis.set_xlabel(unit)
    axis.set_xlim(right=max(numbers, default=0) * 1.25 or 1)
    axis.set_title(title)
    return figure


def monthly_revenue(
    title: str,
    months: Sequence[str],
    revenue: Sequence[Decimal],
    unit: str,
    t: Translator | None = None,
) -> bytes:
    """Revenue per month as bars, each labelled with its amount."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH, HEIGHT))
    axis = figure.add_subplot()
    positions = list(range(len(months)))
    bars = axis.bar(positions, [float(r) for r in revenue], color=INPUT_COLOUR)
    axis.bar_label(bars, labels=[f"{r:,}" for r in revenue], padding=2, fontsize=8)
    # "Nov 26" rather than "2026-11": twelve of them fit side by side.
    axis.set_xticks(positions, [_month(t, date.fromisoformat(m + "-01")) for m in months])
    axis.set_ylabel(unit)
    axis.set_ylim(0, float(max(revenue, default=0)) * 1.2 or 1)
    axis.set_title(title)
    return _png(figure)
