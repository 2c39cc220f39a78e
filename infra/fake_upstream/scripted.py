"""Faults queued by ``POST /_fake/faults``, for tests that reach the fake through a gateway.

A gateway forwards neither ``x-fake-*`` headers nor (for most providers) unknown body fields,
so a test scripts the upstream's next failures instead::

    POST /_fake/faults {"model": "claude-sonnet-4-5", "status": 529, "count": 2}

Each of the next ``count`` requests that match (``model`` and ``provider`` when given) takes
one: it waits ``latency_ms``, then answers ``status`` in its provider's own error format
(with ``retry_after`` on a 429/503/529), or drops the connection (``drop``), or breaks its
stream after ``after_chunks`` events. Specs are consumed in the order they were queued.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

FIELDS = ("model", "provider", "status", "count", "retry_after", "latency_ms", "drop")
FIELDS_ALL = (*FIELDS, "after_chunks")


@dataclass(slots=True)
class ScriptedFault:
    model: str | None = None
    provider: str | None = None
    status: int | None = None
    count: int = 1
    retry_after: int | None = None
    latency_ms: float = 0.0
    drop: bool = False
    after_chunks: int | None = None

    def matches(self, provider: str, model: str | None) -> bool:
        return (self.model is None or self.model == model) and (
            self.provider is None or self.provider == provider
        )


def _int(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"'{name}' must be an integer from {low} to {high}")
    return value


def parse(body: Any) -> ScriptedFault:
    """A validated spec from the JSON body; ``ValueError`` names what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    unknown = sorted(set(body) - set(FIELDS_ALL))
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(unknown)}; known: {', '.join(FIELDS_ALL)}")
    for name in ("model", "provider"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ValueError(f"'{name}' must be a string")
    latency = body.get("latency_ms", 0)
    if not isinstance(latency, int | float) or isinstance(latency, bool) or latency < 0:
        raise ValueError("'latency_ms' must be a number >= 0")
    if not isinstance(body.get("drop", False), bool):
        raise ValueError("'drop' must be a boolean")
    fault = ScriptedFault(
        model=body.get("model"),
        provider=body.get("provider"),
        status=_int(body, "status", 400, 599),
        count=_int(body, "count", 1, 1_000_000) or 1,
        retry_after=_int(body, "retry_after", 0, 86_400),
        latency_ms=float(latency),
        drop=body.get("drop", False),
        after_chunks=_int(body, "after_chunks", 0, 1_000_000),
    )
    acts = fault.status is not None or fault.drop or fault.after_chunks is not None
    if not acts and not fault.latency_ms:
        raise ValueError("a fault needs 'status', 'drop', 'after_chunks' or 'latency_ms'")
    return fault


class FaultQueue:
    """Queued specs; ``take`` hands out one use of the first spec that matches."""

    def __init__(self) -> None:
        self._queue: deque[ScriptedFault] = deque()

    def add(self, fault: ScriptedFault) -> None:
        self._queue.append(fault)

    def clear(self) -> None:
        self._queue.clear()

    def take(self, provider: str, model: str | None) -> ScriptedFault | None:
        for fault in self._queue:
            if fault.matches(provider, model):
                fault.count -= 1
                if fault.count <= 0:
                    self._queue.remove(fault)
                return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        return [asdict(fault) for fault in self._queue]
