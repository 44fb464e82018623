"""A subscription's state as Stripe reports it, read leniently from any API version.

Kept apart from the Stripe client so that the webhook effects can read event payloads without
importing the SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """What we keep in step with Stripe's copy of a subscription."""

    status: str
    cancel_at_period_end: bool
    current_period_end: datetime | None


def subscription_state(subscription: Mapping[str, Any]) -> SubscriptionState:
    """Read leniently: since API 2025-03-31 the period lives on the subscription's items."""
    end = subscription.get("current_period_end")
    items = subscription.get("items")
    if end is None and isinstance(items, Mapping):
        ends = [
            item.get("current_period_end")
            for item in items.get("data") or []
            if isinstance(item, Mapping)
        ]
        end = max((e for e in ends if isinstance(e, int)), default=None)
    return SubscriptionState(
        status=str(subscription.get("status") or ""),
        cancel_at_period_end=bool(subscription.get("cancel_at_period_end")),
        current_period_end=datetime.fromtimestamp(end, UTC) if isinstance(end, int) else None,
    )
