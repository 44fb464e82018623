"""The operator's business figures (``/stats billing``), as plain arithmetic on integer micro-units
so every figure is exact and the same however it is summed.

- MRR: the monthly value of every active subscription (its plan's price) plus, for each
  postpaid tenant, its average monthly invoice; ARR = 12 × MRR.
- Churn rate: tenants churned in the period / tenants that existed at its start (None when
  there were none), as a fraction rounded half-up to 4 places.
- ARPU: revenue of the period / customers (tenants not suspended that existed by its end),
  rounded half-up to the micro-unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal

#: Places of a churn rate (``0.0833`` is 8.33 %).
RATE_PLACES = Decimal("0.0001")


def average(totals: Sequence[int]) -> int:
    """The mean of some amounts in micro-units, rounded half-up to the micro-unit (0 if none)."""
    if not totals:
        return 0
    return int((Decimal(sum(totals)) / len(totals)).to_integral_value(rounding=ROUND_HALF_UP))


def monthly_recurring(subscription_prices: Iterable[int], postpaid_averages: Iterable[int]) -> int:
    """MRR in micro-units: each active subscription's monthly price plus each postpaid tenant's
    average monthly invoice."""
    return sum(subscription_prices) + sum(postpaid_averages)


def annual_recurring(mrr: int) -> int:
    return 12 * mrr


def churn_rate(churned: int, at_start: int) -> Decimal | None:
    """Churned / tenants at the start, or None when no tenant existed at the start."""
    if at_start <= 0:
        return None
    return (Decimal(churned) / at_start).quantize(RATE_PLACES, rounding=ROUND_HALF_UP)


def per_customer(revenue: int, customers: int) -> int:
    """ARPU in micro-units (0 with no customer)."""
    if customers <= 0:
        return 0
    return int((Decimal(revenue) / customers).to_integral_value(rounding=ROUND_HALF_UP))
