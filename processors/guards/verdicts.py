"""A request or response event → the text Presidio reads → a ``guard.verdict``.

Pure functions, so a verdict is the same every time its event is analysed: the id derives
from (request id, source), ``ts`` is the event's, and the text is cut at a fixed length.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from schemas.events import GuardVerdict, RequestReceived, ResponseCompleted

_VERDICT_NAMESPACE = uuid.UUID("3c7b1e0a-9d42-4f1e-8b6a-5e2d9f01c7a4")
_TEXT_KEYS = frozenset({"content", "text", "arguments", "input", "prompt", "system"})
"""Where a body holds words (chat, Anthropic messages, embeddings, legacy completions);
images, audio and file data are skipped."""
_BODY_KEYS = ("system", "messages", "input", "prompt")
PRESIDIO_NAMES = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "US_SSN": "SSN",
    "IBAN_CODE": "IBAN",
}
"""Presidio's names for what the inline guard also finds, so both stages' rows agree."""


class Finding(Protocol):
    """What Presidio's ``RecognizerResult`` gives us."""

    entity_type: str
    score: float


def verdict_id(request_id: str, source: str) -> str:
    return str(uuid.uuid5(_VERDICT_NAMESPACE, f"{request_id}|{source}"))


@dataclass(frozen=True, slots=True)
class Text:
    """What one event gives Presidio: the text (cut at ``max_chars``) and whether it was."""

    text: str
    truncated: bool


def _strings(value: Any, key: str = "") -> Iterator[str]:
    if isinstance(value, str):
        if key in _TEXT_KEYS:
            yield value
    elif isinstance(value, list):
        for item in value:
            # a list of strings (embeddings input, a prompt batch) is text of its key
            yield from _strings(item, key if isinstance(item, str) else "")
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _strings(item, name)


def text_of(event: RequestReceived | ResponseCompleted, max_chars: int) -> Text | None:
    """None when the body policy kept nothing (``none``): there is nothing to read."""
    if isinstance(event, RequestReceived):
        if event.body_kept == "none":
            return None
        parts = [s for key in _BODY_KEYS for s in _strings(event.body.get(key), key)]
    else:
        if event.outputs_kept == "none":
            return None
        parts = [o for o in event.outputs if isinstance(o, str)]
    whole = "\n".join(p for p in parts if p)
    return Text(whole[:max_chars], len(whole) > max_chars)


def summarise(findings: Sequence[Finding], min_score: float) -> list[dict[str, Any]]:
    """Per type: the highest score and how many, in type order (stable for replay)."""
    by_type: dict[str, tuple[float, int]] = {}
    for found in findings:
        if found.score < min_score:
            continue
        name = PRESIDIO_NAMES.get(found.entity_type, found.entity_type)
        score, count = by_type.get(name, (0.0, 0))
        by_type[name] = (max(score, round(float(found.score), 4)), count + 1)
    return [
        {"type": name, "score": score, "count": count}
        for name, (score, count) in sorted(by_type.items())
    ]


def verdict(
    event: RequestReceived | ResponseCompleted,
    text: Text | None,
    entities: list[dict[str, Any]],
) -> GuardVerdict:
    guard = event.guard if isinstance(event.guard, dict) else {}
    source = "request" if isinstance(event, RequestReceived) else "response"
    inline = guard.get("entities") or {}
    return GuardVerdict(
        id=verdict_id(event.request_id, source),
        ts=event.ts,
        request_id=event.request_id,
        tenant=event.tenant,
        key_id=event.key_id,
        model=event.model,
        source=source,
        entities=entities,
        action=str(guard.get("action") or ""),
        inline_entities={str(k): int(v) for k, v in inline.items()},
        injection_score=float(guard.get("injection_score") or 0.0),
        analyzed_chars=0 if text is None else len(text.text),
        truncated=False if text is None else text.truncated,
    )
