"""What ``/health`` says: can this replica serve, and what is its view of the world.

``ok``: serving, events flowing to Kafka. ``degraded``: serving, but events wait (memory or
the disk spool) or some were dropped, or the key registry has not caught up. The status code
stays 200 while the replica can serve: a load balancer must not pull it for a Kafka outage.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ingress.gateway import Gateway
from ingress.key_registry import KeyRegistry
from ingress.publisher import EventPublisher


def event_state(publisher: EventPublisher) -> dict[str, Any]:
    return {
        "kafka_connected": publisher.connected,
        "backlog": publisher.backlog,
        "spooled_bytes": publisher.spooled_bytes,
        "published": publisher.published,
        "dropped": publisher.dropped,
        "last_error": publisher.last_error,
    }


def health_view(
    gateway: Gateway, publisher: EventPublisher, registry: KeyRegistry, worker: int
) -> Callable[[bool], dict[str, Any]]:
    def health(detail: bool) -> dict[str, Any]:
        degraded = (
            publisher.dropped > 0 or not publisher.connected or not registry.caught_up.is_set()
        )
        body: dict[str, Any] = {
            "status": "degraded" if degraded else "ok",
            "events": event_state(publisher),
            "keys": {"caught_up": registry.caught_up.is_set(), "last_error": registry.last_error},
        }
        if detail:
            body["worker"] = {"index": worker, "pid": os.getpid()}
            body["deployments"] = [
                {
                    "id": d.id,
                    "model": d.settings.model,
                    "provider": d.provider.name,
                    "kind": d.provider.settings.kind,
                    "breaker": d.breaker.state.value,
                    "healthy": d.healthy,
                    "in_flight": d.bulkhead.in_flight,
                    "queued": d.bulkhead.waiting,
                    "latency_ewma_ms": d.latency_ewma_ms,
                }
                for d in gateway.runtime.deployments
            ]
        return body

    return health
