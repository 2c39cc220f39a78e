"""Event → row for each ClickHouse table; the column order is the table's insert order."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from schemas.events import Event, RequestReceived, ResponseCompleted, ResponseFailed, UsageRecorded

REQUEST_LOG = "request_log"
USAGE = "usage"

COLUMNS: dict[str, tuple[str, ...]] = {
    REQUEST_LOG: (
        "event_id",
        "ts",
        "type",
        "request_id",
        "tenant",
        "key_id",
        "endpoint",
        "provider",
        "model",
        "status",
        "latency_ms",
        "error_type",
        "error_message",
        "event",
    ),
    USAGE: (
        "request_id",
        "ts",
        "tenant",
        "key_id",
        "provider",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "token_source",
        "cost",
        "currency",
        "price_ref",
        "event_id",
    ),
}


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def to_row(event: Event, raw: bytes) -> tuple[str, list[Any]]:
    """The table and row for one event; raw is the event as it travelled, kept verbatim."""
    if isinstance(event, UsageRecorded):
        return USAGE, [
            event.request_id,
            _ts(event.ts),
            event.tenant,
            event.key_id,
            event.provider,
            event.model,
            event.prompt_tokens,
            event.completion_tokens,
            event.cached_tokens,
            event.reasoning_tokens,
            event.token_source,
            Decimal(event.cost),
            event.currency,
            event.price_ref,
            UUID(event.id),
        ]
    endpoint = provider = error_type = error_message = ""
    status, latency = 0, 0.0
    if isinstance(event, RequestReceived):
        endpoint = event.endpoint
    elif isinstance(event, ResponseCompleted):
        provider, status, latency = event.provider, event.status, event.latency_ms
    elif isinstance(event, ResponseFailed):
        provider, status, latency = event.provider, event.status, event.latency_ms
        error_type, error_message = event.error_type, event.error_message
    model = getattr(event, "model", "")
    key_id = getattr(event, "key_id", "")
    return REQUEST_LOG, [
        UUID(event.id),
        _ts(event.ts),
        event.TYPE,
        event.request_id,
        event.tenant,
        key_id,
        endpoint,
        provider,
        model,
        status,
        latency,
        error_type,
        error_message,
        raw.decode("utf-8", errors="replace"),
    ]
