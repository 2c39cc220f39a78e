"""A recorded request with its baseline answer, whichever log it was read from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from infra.replay.spec import Selection

CHAT = "/v1/chat/completions"
REPLAYABLE = (CHAT, "/v1/messages")
"""Bodies are recorded in the canonical (OpenAI chat) form, so both replay as chat."""


@dataclass(slots=True)
class Recorded:
    request_id: str
    ts: int
    tenant: str
    key_id: str
    model: str
    endpoint: str
    deployment: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    body_kept: str = "full"
    outputs: list[str] | None = None
    """The baseline answer (one text per choice); None when none was recorded."""
    outputs_kept: str = ""
    status: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    missing_body: bool = False
    """The audit log has the request but its body row is gone (expired by its TTL)."""


def in_sample(request_id: str, fraction: float) -> bool:
    """A stable choice by request id: the same requests on every run and resume."""
    if fraction >= 1:
        return True
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def selected(record: Recorded, selection: Selection) -> bool:
    s = selection
    return (
        s.since_ms <= record.ts < s.until_ms
        and (s.tenant is None or record.tenant == s.tenant)
        and (s.key is None or record.key_id == s.key)
        and (s.model is None or record.model == s.model)
        and (s.route is None or record.deployment == s.route)
        and in_sample(record.request_id, s.sample)
    )


def skip_reason(record: Recorded) -> str:
    """Why a selected request cannot be replayed; empty when it can."""
    if record.endpoint not in REPLAYABLE:
        return f"endpoint {record.endpoint}: only chat requests are replayed"
    if record.body_kept != "full":
        return f"body not kept: policy {record.body_kept}"
    if record.missing_body or not record.body:
        return "body no longer stored (clickhouse.body_ttl_days)"
    return ""
