"""Prometheus metrics for ``GET /metrics``: one registry per app, nothing global.

Labels are bounded by the config (deployments, public model names); a model name the router
does not know never becomes a label. Gauges that mirror live state (breakers, bulkheads, the
event backlog) are read at scrape time, not pushed on every request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ingress.resilience.breaker import BreakerState
from ingress.routing.deployments import LiveDeployment
from schemas.pricing import Price

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
LAG_BUCKETS = (
    *(0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75),
    *(1, 1.5, 2.5, 5, 10, 20, 30, 60),
)
"""Fine around the admission lag's 250 ms target, and wide: under saturation a p99 past
the top bucket would read as the top bucket."""
BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class LiveState(Collector):
    def __init__(
        self,
        deployments: Callable[[], Iterable[LiveDeployment]],
        events: Callable[[], dict[str, Any]],
    ) -> None:
        self._deployments = deployments
        self._events = events

    def collect(self) -> Iterator[GaugeMetricFamily]:
        breaker = GaugeMetricFamily(
            "tollgate_breaker_state",
            "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open",
            labels=["deployment"],
        )
        in_flight = GaugeMetricFamily(
            "tollgate_deployment_in_flight", "Requests in flight", labels=["deployment"]
        )
        queued = GaugeMetricFamily(
            "tollgate_deployment_queued", "Requests waiting for a slot", labels=["deployment"]
        )
        for d in self._deployments():
            breaker.add_metric([d.id], BREAKER_VALUE[d.breaker.state])
            in_flight.add_metric([d.id], d.bulkhead.in_flight)
            queued.add_metric([d.id], d.bulkhead.waiting)
        yield from (breaker, in_flight, queued)
        events = self._events()
        yield GaugeMetricFamily(
            "tollgate_event_backlog", "Events not yet in Kafka", value=events.get("backlog", 0)
        )
        yield GaugeMetricFamily(
            "tollgate_events_dropped", "Events dropped (queue full)", value=events.get("dropped", 0)
        )
        yield GaugeMetricFamily(
            "tollgate_event_spool_bytes",
            "Bytes of events waiting in the disk spool",
            value=events.get("spooled_bytes", 0),
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "tollgate_requests", "Requests answered", ["endpoint", "model", "status"], registry=r
        )
        self.latency = Histogram(
            "tollgate_request_latency_seconds",
            "Time to the full answer",
            ["endpoint", "provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "tollgate_time_to_first_token_seconds",
            "Time to the first streamed chunk",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "tollgate_tokens", "Tokens reported by providers", ["model", "kind"], registry=r
        )
        self.cost = Counter(
            "tollgate_cost_usd",
            "Cost estimated at the ingress (the processors own the truth)",
            ["model"],
            registry=r,
        )
        self.retries = Counter(
            "tollgate_retries", "Retries of a failed attempt", ["deployment"], registry=r
        )
        self.fallbacks = Counter(
            "tollgate_fallbacks", "Answers served by a later target", ["deployment"], registry=r
        )
        self.breaker_skips = Counter(
            "tollgate_breaker_skips", "Targets skipped: circuit open", ["deployment"], registry=r
        )
        self.rate_limited = Counter(
            "tollgate_rate_limit_rejections", "Requests answered 429", ["reason"], registry=r
        )
        self.admission_lag = Histogram(
            "tollgate_admission_state_lag_seconds",
            "From admitting a request to the processors' published state counting it",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.share_waits = Histogram(
            "tollgate_admission_share_wait_seconds",
            "Requests held for this replica's share of a nearly spent limit, by outcome",
            ["outcome"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.admission_age = Gauge(
            "tollgate_admission_state_age_seconds",
            "How long ago the processors last reported (stale past admission.max_state_age_s)",
            registry=r,
        )
        self.admission_replicas = Gauge(
            "tollgate_admission_replicas",
            "Ingress replicas alive by their heartbeats, this one included (limits are shared)",
            registry=r,
        )
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.disconnects = Counter(
            "tollgate_client_disconnects", "Streams the client left early", ["model"], registry=r
        )

    def share_waited(self, outcome: str, seconds: float) -> None:
        self.share_waits.labels(outcome=outcome).observe(seconds)

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, memoised: the hot path asks for the same few series."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def watch(self, state: LiveState) -> None:
        self.registry.register(state)

    def attempt(self, kind: str, deployment: str) -> None:
        counter = {
            "retry": self.retries,
            "fallback": self.fallbacks,
            "breaker_open": self.breaker_skips,
        }.get(kind)
        if counter is not None:
            counter.labels(deployment).inc()

    def usage(self, model: str, usage: dict[str, Any] | None, price: Price | None) -> None:
        """Tokens, and cost in float (a gauge of money, not the books: those are Decimal in
        the processors and ClickHouse)."""
        if not usage:
            return
        prompt = usage.get("prompt_tokens") or 0
        completion = usage.get("completion_tokens") or 0
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        self.child(self.tokens, model, "prompt").inc(prompt)
        self.child(self.tokens, model, "completion").inc(completion)
        if cached:
            self.child(self.tokens, model, "cached").inc(cached)
        if price is not None:
            rates = _float_rates(price)
            cost = (prompt - cached) * rates[0] + cached * rates[1] + completion * rates[2]
            self.child(self.cost, model).inc(cost / 1_000_000)

    def render(self) -> bytes:
        return generate_latest(self.registry)


_RATES: dict[int, tuple[Price, tuple[float, float, float]]] = {}


def _float_rates(price: Price) -> tuple[float, float, float]:
    """Input, cached-input and output rates per 1M tokens, as floats, once per price.

    Memoised by identity: hashing a price (its Decimals and date) cost more than the
    conversion. The entry holds the price, so its id is not reused while cached."""
    hit = _RATES.get(id(price))
    if hit is not None and hit[0] is price:
        return hit[1]
    if len(_RATES) >= 1024:
        _RATES.clear()
    cached = price.input if price.cached_input is None else price.cached_input
    rates = float(price.input), float(cached), float(price.output)
    _RATES[id(price)] = price, rates
    return rates
