"""Prometheus metrics, on a registry owned by one service instance (no global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.turns = Counter(
            "switchboard_turns",
            "Inbound messages handled, by outcome",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "switchboard_tokens",
            "Provider-reported tokens",
            ["provider", "direction"],
            registry=self.registry,
        )
        self.cost = Counter(
            "switchboard_cost_usd", "Provider cost in USD", ["provider"], registry=self.registry
        )
        self.turn_latency = Histogram(
            "switchboard_turn_latency_seconds",
            "Whole assistant turn",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.provider_latency = Histogram(
            "switchboard_provider_latency_seconds",
            "Provider call until the last token",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "switchboard_errors", "Errors by kind", ["kind"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
