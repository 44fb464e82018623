"""The default middleware chain."""

from __future__ import annotations

from handlers.middlewares import (
    CommandMiddleware,
    DedupMiddleware,
    ErrorMiddleware,
    IdentifyMiddleware,
    RateLimitMiddleware,
    TenantStatusMiddleware,
)
from handlers.pipeline import Pipeline
from handlers.services import Services
from handlers.turn import AssistantTurn


def build_pipeline(services: Services) -> Pipeline:
    """errors → dedup → identify → command? → tenant status → rate limit → assistant turn."""
    return Pipeline(
        services,
        [
            ErrorMiddleware(),
            DedupMiddleware(),
            IdentifyMiddleware(),
            CommandMiddleware(),
            TenantStatusMiddleware(),
            RateLimitMiddleware(services.config.rate_limit_per_minute),
        ],
        AssistantTurn(),
    )
