"""One conversion of provider costs into the billing currency, the same for every reader.

A call priced by genai-prices costs USD (converted at ``USD_TO_BILLING_RATE``); one priced by a
``model_prices`` row in the billing currency costs that as it is. ``/usage``, ``tenant show``
and ``/stats`` must all arrive at the same figure.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from core.money import from_micros
from storage.models import ModelPrice, UsageEvent
from storage.repositories.usage import PriceRepository
from tests.conftest import AppFactory, admin, bind_console, say, tenant_with_tokens


async def test_usd_and_billing_currency_costs_agree_everywhere(make_app: AppFactory) -> None:
    app = await make_app(USD_TO_BILLING_RATE="0.5", BILLING_CURRENCY="EUR")
    await tenant_with_tokens(app)
    await bind_console(app)
    await say(app, "first question, priced in USD by genai-prices")
    async with app.deps.sessions.begin() as session:
        await PriceRepository(session).upsert(
            ModelPrice(
                provider="openai",
                model="gpt-4o-mini",
                input_per_mtok_micros=1_000_000_000,  # 1,000 EUR per million: visible amounts
                cached_input_per_mtok_micros=None,
                output_per_mtok_micros=2_000_000_000,
                currency="EUR",
            )
        )
    app.deps.pricer.invalidate()
    await say(app, "second question, priced in EUR by a model_prices row")

    async with app.deps.sessions() as session:
        events = (await session.execute(select(UsageEvent).order_by(UsageEvent.id))).scalars()
        usd, eur = list(events)
    assert (usd.cost_currency, eur.cost_currency) == ("USD", "EUR")
    assert usd.cost_micros > 0 and eur.cost_micros > 0
    expected = from_micros(usd.cost_micros) * Decimal("0.5") + from_micros(eur.cost_micros)

    shown = (await admin(app, "tenant", "show", "acme")).data["usage"]
    usage = (await admin(app, "usage", "--tenant", "acme")).data
    stats = (await admin(app, "stats", "tenant", "acme")).data
    assert Decimal(shown["cost"]) == expected.quantize(Decimal("0.000001"))
    assert Decimal(usage["period"]["cost"]) == Decimal(shown["cost"])
    assert Decimal(stats["cost"]) == expected.quantize(Decimal(stats["cost"]))
