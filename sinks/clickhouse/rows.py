"""Event → rows for the ClickHouse tables; each table's column order is its insert order.

One event may give several rows: a request gives its audit row, its prompt body (when the
body policy kept one) and its guard verdict; a ``guard.verdict`` from the processors gives
one verdict row. The body leaves the audit row's ``event`` JSON,
so it expires with ``bodies`` and not with the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

from schemas.events import (
    AlertRaised,
    Event,
    GuardVerdict,
    ReplayResult,
    RequestReceived,
    RequestRefused,
    ResponseCompleted,
    ResponseFailed,
    UsageRecorded,
)
from schemas.pricing import Price

Lifecycle = RequestReceived | RequestRefused | ResponseCompleted | ResponseFailed
"""The events of one request's life: each is a row of the audit log."""

REQUEST_LOG = "request_log"
USAGE = "usage"
BODIES = "bodies"
VERDICTS = "verdicts"
ALERTS = "alerts"
REPLAY_RESULTS = "replay_results"

COLUMNS: dict[str, tuple[str, ...]] = {
    REQUEST_LOG: (
        "event_id",
        "ts",
        "type",
        "request_id",
        "tenant",
        "team",
        "user",
        "org",
        "key_id",
        "endpoint",
        "provider",
        "deployment",
        "model",
        "upstream_model",
        "stream",
        "status",
        "latency_ms",
        "ttft_ms",
        "attempts",
        "fallback_path",
        "finish_reason",
        "error_type",
        "error_message",
        "guard_action",
        "experiment",
        "variant",
        "body_kept",
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
        "audio_prompt_tokens",
        "image_prompt_tokens",
        "audio_completion_tokens",
        "token_source",
        "cost",
        "cache_savings",
        "currency",
        "price_ref",
        "event_id",
    ),
    BODIES: ("ts", "tenant", "request_id", "kind", "kept", "body", "event_id", "expires"),
    VERDICTS: (
        "ts",
        "tenant",
        "request_id",
        "key_id",
        "model",
        "stage",
        "source",
        "action",
        "entities",
        "scores",
        "injection_score",
        "analyzed_chars",
        "truncated",
        "event_id",
    ),
    ALERTS: (
        "ts",
        "tenant",
        "kind",
        "severity",
        "subject",
        "message",
        "value",
        "limit",
        "period_start",
        "event_id",
    ),
    REPLAY_RESULTS: (
        "ts",
        "experiment",
        "variant",
        "request_id",
        "source_request_id",
        "tenant",
        "model",
        "status",
        "skipped",
        "baseline",
        "exact_match",
        "similarity",
        "structured",
        "json_valid",
        "judge",
        "event_id",
    ),
}

Row = tuple[str, list[Any]]
_MILLION = Decimal(1_000_000)


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class RowBuilder:
    """Builds rows with what the sink knows beyond the event: the body TTL and the prices
    (by ``price_ref``, the exact entry the processors priced the request with)."""

    def __init__(self, body_ttl_days: int, prices: list[Price]) -> None:
        self.body_ttl = timedelta(days=body_ttl_days)
        self.prices = {p.ref: p for p in prices}

    def rows(self, event: Event, raw: bytes) -> list[Row]:
        """The rows of one event; raw is the event as it travelled."""
        if isinstance(event, UsageRecorded):
            return [(USAGE, self._usage(event))]
        if isinstance(event, AlertRaised):
            return [(ALERTS, _alert(event))]
        if isinstance(event, GuardVerdict):
            return [(VERDICTS, _stream_verdict(event))]
        if isinstance(event, ReplayResult):
            return [(REPLAY_RESULTS, _replay(event))]
        if not isinstance(event, Lifecycle):
            return []  # a type this sink does not store (yet): readable, so not a dead letter
        data = orjson.loads(raw)
        body = data.pop("body", None)
        outputs = data.pop("outputs", None)
        rows: list[Row] = [(REQUEST_LOG, _audit(event, orjson.dumps(data).decode()))]
        if isinstance(event, RequestReceived) and body:
            rows += self._body(event, "prompt", event.body_kept, body)
        if isinstance(event, ResponseCompleted) and outputs:
            rows += self._body(event, "completion", event.outputs_kept, outputs)
        guard = getattr(event, "guard", None)
        if isinstance(guard, dict):
            stage = "input" if isinstance(event, RequestReceived) else "output"
            rows.append((VERDICTS, _verdict(event, stage, guard)))
        return rows

    def _body(self, event: Event, kind: str, kept: str, body: Any) -> list[Row]:
        if kept == "none" or not self.body_ttl:
            return []
        ts = _ts(event.ts)
        text = orjson.dumps(body).decode()
        expires = (ts + self.body_ttl).replace(microsecond=0)
        row = [ts, event.tenant, event.request_id, kind, kept, text, UUID(event.id), expires]
        return [(BODIES, row)]

    def _usage(self, event: UsageRecorded) -> list[Any]:
        price = self.prices.get(event.price_ref)
        savings = Decimal(0)
        if price is not None and price.cached_input is not None and event.cached_tokens:
            savings = event.cached_tokens * (price.input - price.cached_input) / _MILLION
        return [
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
            event.audio_prompt_tokens,
            event.image_prompt_tokens,
            event.audio_completion_tokens,
            event.token_source,
            Decimal(event.cost),
            savings,
            event.currency,
            event.price_ref,
            UUID(event.id),
        ]


def _audit(event: Lifecycle, stored: str) -> list[Any]:
    provider = deployment = upstream_model = finish_reason = error_type = error_message = ""
    status, latency, ttft = 0, 0.0, None
    attempts: list[dict[str, Any]] = []
    if isinstance(event, RequestReceived):
        deployment, body_kept, guard = event.deployment, event.body_kept, event.guard
    elif isinstance(event, RequestRefused):
        status, body_kept, guard = event.status, "", None
        error_type, error_message = event.error_type, event.error_message
    else:
        provider, status, latency = event.provider, event.status, event.latency_ms
        deployment, attempts = event.deployment, event.attempts
        body_kept, guard = "", None
        if isinstance(event, ResponseCompleted):
            upstream_model, ttft = event.upstream_model, event.ttft_ms
            finish_reason = event.finish_reason or ""
            body_kept, guard = event.outputs_kept, event.guard
        else:
            error_type, error_message = event.error_type, event.error_message
    return [
        UUID(event.id),
        _ts(event.ts),
        event.TYPE,
        event.request_id,
        event.tenant,
        event.team or "",
        event.user or "",
        event.org or "",
        event.key_id,
        event.endpoint,
        provider,
        deployment,
        event.model,
        upstream_model,
        event.stream,
        status,
        latency,
        ttft,
        min(len(attempts), 255),
        _path(attempts),
        finish_reason,
        error_type,
        error_message,
        str(guard.get("action", "")) if isinstance(guard, dict) else "",
        event.experiment,
        event.variant,
        body_kept,
        stored,
    ]


def _path(attempts: list[dict[str, Any]]) -> list[str]:
    """The deployments tried, in order, a retry on the same one counted once."""
    path: list[str] = []
    for attempt in attempts:
        deployment = str(attempt.get("deployment", ""))
        if not path or path[-1] != deployment:
            path.append(deployment)
    return path


def _verdict(event: Event, stage: str, guard: dict[str, Any]) -> list[Any]:
    entities = guard.get("entities") or {}
    return [
        _ts(event.ts),
        event.tenant,
        event.request_id,
        getattr(event, "key_id", ""),
        getattr(event, "model", ""),
        stage,
        event.TYPE,
        str(guard.get("action", "")),
        {str(k): int(v) for k, v in entities.items()},
        {},
        float(guard.get("injection_score") or 0.0),
        0,
        False,
        UUID(event.id),
    ]


def _stream_verdict(event: GuardVerdict) -> list[Any]:
    """Presidio's findings: counts and highest scores per type; the action is the inline
    guard's (the stream only observes)."""
    found = [e for e in event.entities if isinstance(e, dict) and e.get("type")]
    return [
        _ts(event.ts),
        event.tenant,
        event.request_id,
        event.key_id,
        event.model,
        "input" if event.source == "request" else "output",
        event.TYPE,
        event.action,
        {str(e["type"]): int(e.get("count", 0)) for e in found},
        {str(e["type"]): float(e.get("score", 0.0)) for e in found},
        event.injection_score,
        event.analyzed_chars,
        event.truncated,
        UUID(event.id),
    ]


def _alert(event: AlertRaised) -> list[Any]:
    return [
        _ts(event.ts),
        event.tenant,
        event.kind,
        event.severity,
        event.subject,
        event.message,
        event.value,
        event.limit,
        _ts(event.period_start),
        UUID(event.id),
    ]


def _replay(event: ReplayResult) -> list[Any]:
    return [
        _ts(event.ts),
        event.experiment,
        event.variant,
        event.request_id,
        event.source_request_id,
        event.tenant,
        event.model,
        event.status,
        event.skipped,
        event.baseline,
        event.exact_match,
        event.similarity,
        event.structured,
        event.json_valid,
        event.judge,
        UUID(event.id),
    ]
