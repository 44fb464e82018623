"""Provider costs in the billing currency: the one place amounts are converted.

Provider prices (genai-prices) are in USD and converted at ``USD_TO_BILLING_RATE``; a
``model_prices`` row may be priced in the billing currency itself, which counts as it is. Any
other currency has no known rate and is left out of converted totals (its calls still show
their own cost and currency in ``/export usage``). Costs are summed per currency in micro-units
first and converted once, so every reader (``/usage``, ``tenant show``, ``/stats``, exports,
invoices) arrives at the same figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from assistants.pricing import PROVIDER_CURRENCY
from core.money import MICROS_PER_UNIT


@dataclass(frozen=True, slots=True)
class CostConversion:
    billing_currency: str
    usd_rate: Decimal

    def rate(self, currency: str) -> Decimal | None:
        """Billing-currency units per unit of ``currency``, or None when it has no rate."""
        if currency == self.billing_currency:
            return Decimal(1)
        if currency == PROVIDER_CURRENCY:
            return self.usd_rate
        return None

    def micros(self, costs: Mapping[str, int]) -> Decimal:
        """Micro-units of the billing currency (exact, not rounded) of per-currency costs."""
        total = Decimal(0)
        for currency, micros in costs.items():
            rate = self.rate(currency)
            if rate is not None and micros:
                total += Decimal(micros) * rate
        return total

    def amount(self, costs: Mapping[str, int]) -> Decimal:
        """The same in units of the billing currency."""
        return self.micros(costs) / MICROS_PER_UNIT
