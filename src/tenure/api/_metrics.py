"""Prometheus metrics of one app: requests, events, and the stores' queues at scrape time.

Each app has its own registry (tests start many apps in one process). Queue
depths are read from the operational store when Prometheus scrapes, not
kept in counters that a restart would reset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from tenure.store._tables import inbox, outbox

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _StoreCollector(Collector):
    """Inbox lag, outbox depth and deliveries by status, queried at scrape time."""

    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime]) -> None:
        self._engine = engine
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._engine.connect() as connection:
            waiting, oldest = connection.execute(
                select(func.count(), func.min(inbox.c.received_at)).where(
                    inbox.c.loaded_at.is_(None)
                )
            ).one()
            by_status = connection.execute(
                select(outbox.c.status, func.count()).group_by(outbox.c.status)
            ).all()
        depth = GaugeMetricFamily(
            "tenure_inbox_waiting_events", "Acknowledged events not yet loaded into the lake"
        )
        depth.add_metric([], float(waiting))
        yield depth
        lag = GaugeMetricFamily(
            "tenure_inbox_lag_seconds", "Age of the oldest event waiting in the inbox"
        )
        lag.add_metric([], (self._clock() - oldest).total_seconds() if oldest else 0.0)
        yield lag
        counts: dict[str, int] = {str(s): int(n) for s, n in by_status}
        queued = GaugeMetricFamily(
            "tenure_outbox_depth", "Actions waiting to be delivered (queued, retry, sending)"
        )
        queued.add_metric([], float(sum(counts.get(s, 0) for s in ("queued", "retry", "sending"))))
        yield queued
        deliveries = GaugeMetricFamily(
            "tenure_deliveries", "Actions in the outbox by status", labels=["status"]
        )
        for status, count in sorted(counts.items()):
            deliveries.add_metric([status], float(count))
        yield deliveries


class Metrics:
    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tenure_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tenure_http_request_duration_seconds",
            "HTTP request latency by route and method",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            "tenure_events",
            "Events offered to the collection API by outcome",
            ["outcome"],  # accepted | duplicate | rejected
            registry=self.registry,
        )
        self.loaded = Counter(
            "tenure_loader_events",
            "Events the loader moved from the inbox, by outcome",
            ["outcome"],  # loaded | duplicate | quarantined
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(engine, clock))
