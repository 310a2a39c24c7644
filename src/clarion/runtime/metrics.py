"""Prometheus metrics, named by Prometheus conventions; never an address or an id as a label."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created` series: noise


class _QueueCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, float]]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            values = self.stats()
        except Exception:  # a scrape must not fail because the store is down
            return
        yield GaugeMetricFamily(
            "clarion_queue_depth", "Deliveries due and not yet sent.", value=values["queue_depth"]
        )
        yield GaugeMetricFamily(
            "clarion_oldest_pending_age_seconds",
            "How long the oldest due delivery has waited.",
            value=values["oldest_pending_age_seconds"],
        )


class Metrics:
    def __init__(self, stats: Callable[[], dict[str, float]]) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "clarion_events",
            "Events received, by type and result.",
            ["type", "result"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "clarion_deliveries",
            "Deliveries by channel and status.",
            ["channel", "status"],
            registry=self.registry,
        )
        self.failovers = Counter(
            "clarion_failovers",
            "Sends handed to a channel's next provider URL because one failed.",
            ["channel"],
            registry=self.registry,
        )
        self.dispatch_seconds = Histogram(
            "clarion_dispatch_duration_seconds",
            "Time to hand a message to its provider.",
            ["channel"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.table_info = Gauge(
            "clarion_table_info",
            "The routing table being served.",
            ["digest"],
            registry=self.registry,
        )
        self.registry.register(_QueueCollector(stats))

    def serving(self, digest: str) -> None:
        self.table_info.clear()
        self.table_info.labels(digest=digest).set(1)
