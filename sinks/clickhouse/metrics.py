"""The sink's Prometheus metrics, on a registry of its own (served at the query endpoint's
``/metrics``): lag per partition, batch sizes, insert time, rows, duplicates, dead letters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SinkMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.lag = Gauge(
            "tollgate_sink_lag_records",
            "Records on Kafka the sink has not written yet, per partition",
            ["topic", "partition"],
            registry=r,
        )
        self.batch_records = Histogram(
            "tollgate_sink_batch_records",
            "Kafka records per batch",
            buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000),
            registry=r,
        )
        self.insert_seconds = Histogram(
            "tollgate_sink_insert_seconds",
            "Time to write one batch to ClickHouse (plan, rows, done mark), retries included",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.rows = Counter("tollgate_sink_rows", "Rows written, per table", ["table"], registry=r)
        self.duplicates = Counter(
            "tollgate_sink_duplicate_events",
            "Events left out because ClickHouse already held them (a re-sent event)",
            registry=r,
        )
        self.dead_letters = Counter(
            "tollgate_sink_dead_letters", "Records sent to the dead-letter topic", registry=r
        )
        self.insert_retries = Counter(
            "tollgate_sink_insert_retries", "Failed batch writes retried", registry=r
        )
        self.replayed = Counter(
            "tollgate_sink_replayed_batches",
            "Unfinished batches re-sent at start or after a rebalance",
            registry=r,
        )
