"""The packs and plans seeded on first start (DESIGN §8), in the billing currency.

Seeding only adds what is missing, so prices an operator changed with ``/pack set`` or
``/plan set`` are never reset by a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from core.money import to_micros
from storage.models import Pack, Plan
from storage.repositories.catalog import PackRepository, PlanRepository
from storage.states import PlanKind


@dataclass(frozen=True, slots=True)
class PackSpec:
    slug: str
    name: str
    tokens: int
    price: Decimal


@dataclass(frozen=True, slots=True)
class PlanSpec:
    slug: str
    name: str
    kind: PlanKind
    price: Decimal = Decimal(0)
    tokens_included: int = 0
    markup: Decimal = Decimal(1)
    base_fee: Decimal = Decimal(0)


DEFAULT_PACKS = (
    PackSpec("starter", "Starter", 500_000, Decimal("5.00")),
    PackSpec("pro", "Pro", 2_000_000, Decimal("15.00")),
    PackSpec("enterprise", "Enterprise", 10_000_000, Decimal("50.00")),
)

DEFAULT_PLANS = (
    PlanSpec("prepaid", "Prepaid", "prepaid"),
    PlanSpec("postpaid", "Postpaid", "postpaid", markup=Decimal("1.30")),
    # Cheaper per token than the matching pack: subscribing is the committed, better deal.
    PlanSpec("starter", "Starter", "subscription", Decimal("9.00"), 1_000_000),
    PlanSpec("pro", "Pro", "subscription", Decimal("29.00"), 5_000_000),
    PlanSpec("enterprise", "Enterprise", "subscription", Decimal("99.00"), 25_000_000),
)


def ppm(value: Decimal) -> int:
    """A ratio (1.30) in parts per million (1300000), exact."""
    return int((value * 1_000_000).to_integral_value())


async def seed_catalog(session: AsyncSession, currency: str) -> list[str]:
    """Add the default packs and plans that do not exist yet; returns what was added."""
    added: list[str] = []
    packs = PackRepository(session)
    for spec in DEFAULT_PACKS:
        pack = Pack(
            slug=spec.slug,
            name=spec.name,
            tokens=spec.tokens,
            price_micros=to_micros(spec.price),
            currency=currency,
            active=True,
        )
        if await packs.add_if_missing(pack):
            added.append(f"pack {spec.slug}")
    plans = PlanRepository(session)
    for plan_spec in DEFAULT_PLANS:
        plan = Plan(
            slug=plan_spec.slug,
            name=plan_spec.name,
            kind=plan_spec.kind,
            price_micros=to_micros(plan_spec.price),
            currency=currency,
            tokens_included=plan_spec.tokens_included,
            markup_ppm=ppm(plan_spec.markup),
            base_fee_micros=to_micros(plan_spec.base_fee),
            active=True,
        )
        if await plans.add_if_missing(plan):
            added.append(f"plan {plan_spec.slug}")
    return added
