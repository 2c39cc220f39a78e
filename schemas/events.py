"""The versioned event envelope and the event types every stage exchanges.

Every event is one flat JSON object: the envelope fields (``v``, ``type``, ``id``, ``ts``,
``request_id``, ``tenant``) plus the fields of its type. Readers tolerate unknown fields, so
a producer may add a field without a lock-step deploy; a different major version ``v`` is a
contract break and is rejected with an error that names the event.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import orjson
import uuid_utils

SCHEMA_VERSION = 1


class EventDecodeError(ValueError):
    """Bytes that are not a readable event of this contract."""


class UnknownEventVersionError(EventDecodeError):
    """An event written by a newer (or older) major version of the contract."""


def new_event_id() -> str:
    """uuid7: unique and time-ordered, so ClickHouse keys stay sorted by arrival."""
    return str(uuid_utils.uuid7())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True, kw_only=True)
class Event:
    """Envelope fields shared by every event."""

    TYPE: ClassVar[str] = ""

    request_id: str
    tenant: str
    id: str = field(default_factory=new_event_id)
    ts: int = field(default_factory=now_ms)
    v: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _field_names(type(self))}
        data["type"] = self.TYPE
        return data

    def encode(self) -> bytes:
        """orjson writes a dataclass natively, in half the time of the same dict (two events
        a request on the ingress); the type tag is spliced onto the object's end."""
        return orjson.dumps(self)[:-1] + _type_tag(self.TYPE)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type[Event]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


@functools.cache
def _type_tag(name: str) -> bytes:
    return b',"type":' + orjson.dumps(name) + b"}"


@dataclass(slots=True, kw_only=True)
class Usage:
    """Token counts by kind, as the provider reported them or as we counted them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    audio_prompt_tokens: int = 0
    image_prompt_tokens: int = 0
    audio_completion_tokens: int = 0
    """Parts of the prompt and completion counts above (OpenAI's ``*_tokens_details``),
    priced at their own rates where the catalog has them."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: dict[str, Any]) -> Usage:
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(prompt_details.get("cached_tokens") or 0),
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
            audio_prompt_tokens=int(prompt_details.get("audio_tokens") or 0),
            image_prompt_tokens=int(prompt_details.get("image_tokens") or 0),
            audio_completion_tokens=int(completion_details.get("audio_tokens") or 0),
        )


@dataclass(slots=True, kw_only=True)
class RequestReceived(Event):
    """A client request the ingress accepted; the request log is the source of truth."""

    TYPE: ClassVar[str] = "request.received"

    key_id: str
    endpoint: str
    model: str
    stream: bool = False
    body: dict[str, Any] = field(default_factory=dict)
    team: str | None = None
    user: str | None = None
    org: str | None = None
    deployment: str = ""
    """The deployment routing chose first (a fallback may serve the request elsewhere)."""
    est_usd: str = "0"
    """The admission estimate (prompt by tiktoken plus max output, priced): the processors
    reserve it against budgets while the request is in flight."""
    est_tokens: int = 0
    prompt_tokens: int | None = None
    """The prompt's tokens by tiktoken, when the ingress counted them (a metered request's
    estimate) or the body is not kept whole; otherwise the processors count ``body``."""
    body_kept: str = "full"
    """What ``body`` holds under the tenant's body policy: ``full``, ``redacted`` (PII and
    secrets replaced by placeholders) or ``none`` (``body`` is empty)."""
    guard: dict[str, Any] | None = None
    """The inline guard's verdict on the prompt: ``action`` (allow, warn, redact, block),
    ``entities`` (type → count) and ``injection_score``; None when no guard ran."""
    experiment: str = ""
    variant: str = ""
    """A replay or live split tags its calls; empty for ordinary traffic."""


@dataclass(slots=True, kw_only=True)
class ResponseCompleted(Event):
    """The provider answered; ``usage`` is None when the provider did not report it."""

    TYPE: ClassVar[str] = "response.completed"

    key_id: str
    provider: str
    model: str
    status: int
    latency_ms: float
    outputs: list[str] = field(default_factory=list)
    """Text of each choice; counted per choice when the provider reports no usage."""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    endpoint: str = "/v1/chat/completions"
    deployment: str = ""
    upstream_model: str = ""
    stream: bool = False
    ttft_ms: float | None = None
    """Time to the first streamed chunk (streams only)."""
    disconnected: bool = False
    """The client went away mid-stream; ``outputs`` hold what was generated until then."""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """Every try (deployment, status, error, latency): retries and fallbacks, in order."""
    team: str | None = None
    user: str | None = None
    org: str | None = None
    outputs_kept: str = "full"
    """What ``outputs`` hold under the body policy (as ``RequestReceived.body_kept``)."""
    completion_tokens: int | None = None
    """The answer's tokens by tiktoken, counted by the ingress when the provider reported
    no usage and ``outputs`` are not the whole answer (``outputs_kept`` is not ``full``):
    the processors cannot count what the event does not hold."""
    guard: dict[str, Any] | None = None
    """The output guard's verdict (PII leaks, blocked topics), as on the request."""
    experiment: str = ""
    variant: str = ""


@dataclass(slots=True, kw_only=True)
class ResponseFailed(Event):
    """The request ended without a completion: provider error, timeout or bad gateway."""

    TYPE: ClassVar[str] = "response.failed"

    key_id: str
    provider: str
    model: str
    status: int
    latency_ms: float
    error_type: str
    error_message: str
    endpoint: str = "/v1/chat/completions"
    stream: bool = False
    attempts: list[dict[str, Any]] = field(default_factory=list)
    deployment: str = ""
    team: str | None = None
    user: str | None = None
    org: str | None = None
    experiment: str = ""
    variant: str = ""


@dataclass(slots=True, kw_only=True)
class RequestRefused(Event):
    """An authenticated request the ingress answered with an error before accepting it: bad
    input (400), a model the key may not use (403) or the gateway does not serve (404), a
    budget or rate limit (429). Nothing was reserved or sent upstream, so the processors
    pass over it; the audit log keeps it (who was refused, for what)."""

    TYPE: ClassVar[str] = "request.refused"

    key_id: str
    model: str
    status: int
    error_type: str
    error_code: str | None
    error_message: str
    endpoint: str = "/v1/chat/completions"
    stream: bool = False
    team: str | None = None
    user: str | None = None
    org: str | None = None
    experiment: str = ""
    variant: str = ""


@dataclass(slots=True, kw_only=True)
class UsageRecorded(Event):
    """Tokens and cost of one request, computed once by the processors.

    ``id`` is derived from ``request_id``, so a recomputation after a crash produces the
    same event and downstream deduplication makes it count once.
    """

    TYPE: ClassVar[str] = "usage.recorded"

    key_id: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    audio_prompt_tokens: int = 0
    image_prompt_tokens: int = 0
    audio_completion_tokens: int = 0
    token_source: str = "provider"
    cost: str = "0"
    currency: str = "USD"
    price_ref: str = ""


@dataclass(slots=True, kw_only=True)
class ReplayResult(Event):
    """One replayed request compared with the answer it replays, or why it was skipped.

    Published by ``tollgate replay`` on ``tollgate.experiments``; ``request_id`` is the
    replayed call's id (``replay:<experiment>:<variant>:<source>``), so the replay's own
    request, response and usage rows join it. The id derives from it, so a result sent
    twice is stored once. ``tenant`` is the source request's tenant.
    """

    TYPE: ClassVar[str] = "replay.result"

    experiment: str
    variant: str
    source_request_id: str
    model: str = ""
    status: int = 0
    """The gateway's HTTP status for the replayed call; 0 when skipped."""
    skipped: str = ""
    """Why the request was not sent (its body was not kept, ...); empty when it was."""
    baseline: bool = False
    """The source request has a recorded answer to compare with."""
    exact_match: bool = False
    similarity: float = 0.0
    """difflib ratio of the answer with the baseline answer, 0..1."""
    structured: bool = False
    """The request asked for JSON (``response_format``), so ``json_valid`` applies."""
    json_valid: bool = False
    judge: str = ""
    """The judge model's verdict (``better``, ``same``, ``worse``), empty without a judge."""


@dataclass(slots=True, kw_only=True)
class KeyUpserted(Event):
    """A gateway API key was created (or its attributes set) through the admin API.

    Only the key's sha256 travels; the key itself is shown once to its creator and never
    stored. Keyed by ``key_id`` on ``tollgate.keys``, so compaction keeps the last state.
    """

    TYPE: ClassVar[str] = "key.upserted"

    key_id: str
    """First 16 hex digits of ``key_sha256``, as for static keys."""
    key_sha256: str
    team: str | None = None
    user: str | None = None
    org: str | None = None
    models: list[str] = field(default_factory=list)
    """Models the key may use; empty = all."""
    name: str = ""
    created_at: int = field(default_factory=now_ms)
    """Epoch ms, like ``ts``."""
    expires_at: int | None = None
    """Epoch ms; None = never."""


@dataclass(slots=True, kw_only=True)
class KeyRevoked(Event):
    """A key stops working on every replica as soon as each applies this.

    Revocation is this record, not a Kafka tombstone: compaction keeps it as the key's
    final state, so the topic says who revoked what and when. Readers also treat a
    tombstone (null value) for a key_id as a revocation, so an operator may purge a key.
    """

    TYPE: ClassVar[str] = "key.revoked"

    key_id: str


@dataclass(slots=True, kw_only=True)
class MeterState(Event):
    """One meter's state on one partition of ``tollgate.requests``, as the processors see it.

    Keyed ``<meter>#<partition>`` on the compacted ``tollgate.admission`` topic: the
    processors of each partition own their share, readers add the shares up. ``offset`` is
    the last event of that partition applied. Which fields matter depends on ``kind``:
    ``budget`` (period, spent, reserved), ``rate`` (this and the previous minute, in
    flight), ``provider`` and ``spend`` (per-minute series in ``minutes``).
    """

    TYPE: ClassVar[str] = "meter.state"

    meter: str
    kind: str
    partition: int
    offset: int = -1
    source_ts: int = 0
    """``ts`` of the event at ``offset``."""
    period_start: int = 0
    spent_usd: str = "0"
    tokens: int = 0
    reserved_usd: str = "0"
    reserved_tokens: int = 0
    in_flight: int = 0
    minute: int = 0
    """Epoch minute of ``requests[0]`` and ``window_tokens[0]``; index 1 is the minute before."""
    requests: list[int] = field(default_factory=lambda: [0, 0])
    window_tokens: list[int] = field(default_factory=lambda: [0, 0])
    minutes: dict[str, list[Any]] = field(default_factory=dict)
    """Epoch minute → numbers, for series (provider health, spend per tenant)."""


@dataclass(slots=True, kw_only=True)
class MeterProgress(Event):
    """A partition's processing position, sent after the meter states it covers.

    Published on every flush even when idle, so it doubles as the processors' heartbeat:
    a reader whose newest progress is old knows its view is stale.
    """

    TYPE: ClassVar[str] = "meter.progress"

    partition: int
    offset: int
    """Every event of the partition up to here is reflected in the meter states."""


@dataclass(slots=True, kw_only=True)
class ReplicaAlive(Event):
    """An ingress replica's heartbeat on ``tollgate.admission``, keyed ``replica:<id>``.

    Replicas count each other from these: near a limit each one admits at most its share
    of what the state says is left, so together they cannot overshoot by more than one
    request each during a state lag.
    """

    TYPE: ClassVar[str] = "replica.alive"

    replica: str
    interval_ms: int
    """The next heartbeat is due within this; three missed ones and the replica is gone."""


@dataclass(slots=True, kw_only=True)
class AlertRaised(Event):
    """Something an operator should hear about; ``id`` is derived from what crossed what, so
    a recomputed alert has the same id and is delivered once."""

    TYPE: ClassVar[str] = "alert.raised"

    kind: str
    """budget.threshold, budget.exhausted, spend.spike, provider.error_rate, provider.latency,
    guard.key_blocked"""
    severity: str
    subject: str
    message: str
    value: float = 0.0
    limit: float = 0.0
    period_start: int = 0


@dataclass(slots=True, kw_only=True)
class GuardVerdict(Event):
    """The processors' deeper look (Presidio) at a request's prompt or a response's answer.

    ``id`` derives from ``request_id`` and ``source`` and ``ts`` is the analysed event's, so
    an event analysed again (a replay, a redelivery) yields the same verdict, stored once.
    """

    TYPE: ClassVar[str] = "guard.verdict"

    key_id: str
    model: str
    source: str
    """``request`` (the prompt of ``request.received``) or ``response`` (the outputs of
    ``response.completed``)."""
    entities: list[dict[str, Any]] = field(default_factory=list)
    """What Presidio found, per type: ``{"type", "score" (the highest), "count"}``."""
    action: str = ""
    """What the inline guard did (allow, warn, redact, block); empty when none ran."""
    inline_entities: dict[str, int] = field(default_factory=dict)
    """The inline guard's counts per type, as on the analysed event."""
    injection_score: float = 0.0
    """The inline guard's injection score (requests only)."""
    analyzed_chars: int = 0
    """Characters Presidio read: 0 when the body policy kept nothing (``none``)."""
    truncated: bool = False
    """The text was longer than ``guards.analysis.max_chars``; only its start was read."""


@dataclass(slots=True, kw_only=True)
class KeyBlocked(Event):
    """A key the processors refuse (or throttle) for a while after repeated injection
    attempts or leaks; keyed ``guard:<key_id>`` on ``tollgate.admission``, so compaction
    keeps its last escalation and every ingress replica holds it in memory."""

    TYPE: ClassVar[str] = "key.blocked"

    key_id: str
    action: str
    """``block`` (every request refused) or ``throttle`` (at most ``rpm`` per minute)."""
    reason: str
    """``injection`` or ``leak``: what crossed its threshold."""
    count: int
    """How many within ``window_s`` (the threshold reached)."""
    window_s: int
    since_ms: int
    """``ts`` of the verdict that crossed the threshold."""
    until_ms: int
    rpm: int = 0


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        RequestReceived,
        ResponseCompleted,
        ResponseFailed,
        RequestRefused,
        UsageRecorded,
        ReplayResult,
        KeyUpserted,
        KeyRevoked,
        MeterState,
        MeterProgress,
        ReplicaAlive,
        AlertRaised,
        GuardVerdict,
        KeyBlocked,
    )
}
_FIELDS: dict[type[Event], frozenset[str]] = {
    cls: frozenset(f.name for f in dataclasses.fields(cls)) for cls in EVENT_TYPES.values()
}

E = TypeVar("E", bound=Event)


def from_dict(data: dict[str, Any]) -> Event:
    """Build the typed event; unknown fields are dropped, unknown versions rejected."""
    event_type = data.get("type")
    described = f"event type={event_type!r} id={data.get('id')!r}"
    version = data.get("v")
    if version != SCHEMA_VERSION:
        raise UnknownEventVersionError(
            f"{described} has schema version {version!r}; this build reads version "
            f"{SCHEMA_VERSION}. Upgrade the reader or route the event to the dead-letter topic."
        )
    cls = EVENT_TYPES.get(event_type)  # type: ignore[arg-type]
    if cls is None:
        raise EventDecodeError(f"{described}: unknown event type; known: {sorted(EVENT_TYPES)}")
    known = _FIELDS[cls]
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise EventDecodeError(f"{described}: {exc}") from exc


def decode(raw: bytes) -> Event:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventDecodeError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EventDecodeError(f"expected a JSON object, got {type(data).__name__}")
    return from_dict(data)


def decode_as(raw: bytes, cls: type[E]) -> E:
    event = decode(raw)
    if not isinstance(event, cls):
        raise EventDecodeError(f"expected {cls.TYPE}, got {event.TYPE} id={event.id}")
    return event
