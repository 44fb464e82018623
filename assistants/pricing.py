"""Cost of a provider call: ``model_prices`` overrides first, then genai-prices.

Price units: tokens (per million: input, cached input, output) for every call that reports
tokens; for generated media that reports none (DALL·E images, tts-1 speech), per image and per
million characters — a ``model_prices`` row's ``per_image_micros`` / ``per_mchar_micros``, or
genai-prices' own per-character prices (tts-1, tts-1-hd).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from assistants.types import Usage
from core.money import to_micros
from storage.repositories.usage import PriceRepository

log = logging.getLogger(__name__)

PROVIDER_CURRENCY = "USD"
_MTOK = Decimal(1_000_000)
#: Characters per price unit of ``model_prices.per_mchar_micros``.
MCHAR = 1_000_000
# genai-prices knows providers by their API; OpenAI-compatible servers may host any model, so
# after the OpenAI catalogue we let genai-prices match the model name across providers.
_GENAI_PROVIDERS: dict[str, tuple[str | None, ...]] = {
    "openai": ("openai", None),
    "openai_chat": ("openai", None),
    "anthropic": ("anthropic", None),
}


@dataclass(frozen=True, slots=True)
class Price:
    cost_micros: int
    currency: str
    priced: bool
    source: str  # "override" | "genai-prices" | "unpriced"


@dataclass(frozen=True, slots=True)
class _Override:
    input_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None
    output_per_mtok: Decimal
    currency: str
    per_image: Decimal | None = None
    per_mchar: Decimal | None = None


class Pricer:
    """Prices usage; overrides are re-read at most every ``cache_seconds``.

    Overrides are read through the caller's session: the caller may hold SQLite's write lock, and
    a second connection would wait on it.
    """

    def __init__(
        self, *, cache_seconds: float = 30.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._overrides: dict[tuple[str, str], _Override] = {}
        self._loaded_at: float | None = None

    def invalidate(self) -> None:
        self._loaded_at = None

    async def _load(self, session: AsyncSession) -> dict[tuple[str, str], _Override]:
        now = self._monotonic()
        if self._loaded_at is None or now - self._loaded_at > self._cache_seconds:
            rows = await PriceRepository(session).all()
            self._overrides = {
                (row.provider, row.model): _Override(
                    Decimal(row.input_per_mtok_micros) / 1_000_000,
                    None
                    if row.cached_input_per_mtok_micros is None
                    else Decimal(row.cached_input_per_mtok_micros) / 1_000_000,
                    Decimal(row.output_per_mtok_micros) / 1_000_000,
                    row.currency,
                    _units(row.per_image_micros),
                    _units(row.per_mchar_micros),
                )
                for row in rows
            }
            self._loaded_at = now
        return self._overrides

    async def price(
        self, session: AsyncSession, provider: str, model: str, usage: Usage, at: datetime
    ) -> Price:
        overrides = await self._load(session)
        override = overrides.get((provider, model))
        if override is not None:
            return Price(
                to_micros(_override_cost(override, usage)), override.currency, True, "override"
            )
        cost = genai_cost(provider, model, usage, at)
        if cost is None:
            return Price(0, PROVIDER_CURRENCY, False, "unpriced")
        return Price(to_micros(cost), PROVIDER_CURRENCY, True, "genai-prices")


def _units(micros: int | None) -> Decimal | None:
    return None if micros is None else Decimal(micros) / 1_000_000


def unit_cost(
    images: int, characters: int, per_image: Decimal | None, per_mchar: Decimal | None
) -> Decimal:
    """What media priced per unit costs: images × per-image price + characters × the price per
    million characters (exact: the caller rounds once, to the micro-unit)."""
    cost = Decimal(0)
    if per_image is not None:
        cost += images * per_image
    if per_mchar is not None:
        cost += characters * per_mchar / MCHAR
    return cost


def _override_cost(price: _Override, usage: Usage) -> Decimal:
    # Per-unit prices apply to media calls that reported no tokens (their token counts are only
    # the balance's equivalents); a row without them prices those equivalents as tokens.
    if usage.by_units and (price.per_image is not None or price.per_mchar is not None):
        return unit_cost(usage.images, usage.characters, price.per_image, price.per_mchar)
    return _token_cost(price, usage)


def _token_cost(price: _Override, usage: Usage) -> Decimal:
    cached_rate = (
        price.input_per_mtok if price.cached_input_per_mtok is None else price.cached_input_per_mtok
    )
    # model_prices has no cache-write rate: writes are priced as uncached input.
    uncached = usage.input_tokens - usage.cached_input_tokens
    return (
        uncached * price.input_per_mtok
        + usage.cached_input_tokens * cached_rate
        + usage.output_tokens * price.output_per_mtok
    ) / _MTOK


#: Any model genai-prices knows: pricing it loads the whole price list.
_WARM_UP_MODEL = ("openai", "gpt-4o-mini")


def warm_up_prices() -> None:
    """Load genai-prices' bundled price data now (about 0.3 s of CPU), not on the first charge."""
    genai_cost(*_WARM_UP_MODEL, Usage(), datetime.now(UTC))


def genai_cost(provider: str, model: str, usage: Usage, at: datetime) -> Decimal | None:
    """USD cost from genai-prices, or None when it does not know the model or cannot price
    these counts (a pricing error must never lose a generated answer: the caller charges the
    tokens unpriced and the alert says so)."""
    # Imported on first use (by warm_up_prices, after the service is receiving): its pydantic
    # models and price data take ~0.1 s to import, which start-up and every CLI call would pay.
    import genai_prices

    genai_usage = genai_prices.Usage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        # tts-1 is priced per character read; other models ignore the count.
        input_characters=usage.characters or None,
    )
    for provider_id in _GENAI_PROVIDERS.get(provider, (None,)):
        try:
            result = genai_prices.calc_price(
                genai_usage, model, provider_id=provider_id, genai_request_timestamp=at
            )
        except LookupError:
            continue
        except (ValueError, ArithmeticError) as exc:
            log.warning("genai-prices could not price %s/%s: %s", provider, model, exc)
            return None
        return Decimal(result.total_price)
    return None
