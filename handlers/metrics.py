"""Prometheus metrics, on a registry owned by one service instance (no global registry)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from storage.db_stats import DbStats

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

    def watch_database(self, stats: DbStats) -> None:
        """Show ``stats`` (read when ``/metrics`` is asked, nothing is counted twice)."""
        self.registry.register(_DatabaseCollector(stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _DatabaseCollector:
    """The process's database work (:class:`~storage.db_stats.DbStats`) as Prometheus counters."""

    def __init__(self, stats: DbStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        for name, help_text, value in (
            ("switchboard_db_transactions", "Database transactions begun", stats.transactions),
            ("switchboard_db_statements", "SQL statements executed", stats.statements),
            ("switchboard_db_writes", "Write transactions", stats.writes),
            (
                "switchboard_db_writer_hold_seconds",
                "Time write transactions held the writer",
                stats.writer_hold_seconds,
            ),
            (
                "switchboard_db_writer_wait_seconds",
                "Time write transactions waited for the writer (SQLite)",
                stats.writer_wait_seconds,
            ),
        ):
            yield CounterMetricFamily(name, help_text, value=value)
        batches = CounterMetricFamily(
            "switchboard_db_batches", "Group commits by turns in the batch", labels=["size"]
        )
        for size, count in sorted(stats.batch_sizes.items()):
            batches.add_metric([str(size)], count)
        yield batches
