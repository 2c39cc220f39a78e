"""Checks on the answer: PII leaks and blocked topics, redacted or blocked per policy, and
the request's placeholders put back when the policy is reversible.

A stream is checked as it flows. Each choice's text waits in a buffer of at most
``hold_back_chars`` characters (plus the chunk that just came): whatever could still be
the start of a match stays, everything before it goes out, already checked. A match that
straddles the cut moves the cut to its start, so an entity split across chunks is caught
whole, as long as it is no longer than the hold-back. Filtering runs before restoring, so
the caller's own values coming back are never mistaken for a leak.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ingress.guards.inline import Inspection
from ingress.guards.patterns import Span
from ingress.guards.redaction import PLACEHOLDER, mask
from ingress.guards.scan import find_entities

TOPIC = "BLOCKED_TOPIC"


class OutputBlocked(Exception):
    """The answer contains what the policy forbids; nothing of it past the check went out."""

    def __init__(self, types: list[str]) -> None:
        self.types = types
        super().__init__(
            "the answer was withheld by the gateway's content policy: it contained "
            f"{', '.join(types)}. Rephrase the request, or ask your Tollgate admin about the "
            "output policy for your tenant or model."
        )


class OutputGuard:
    """One call's output checks; counts what it found for the ``response.completed`` event."""

    def __init__(self, inspection: Inspection) -> None:
        self.policy = inspection.policy
        self.redactor = inspection.redactor
        out = self.policy.rules.output
        self._pii = out.pii
        self._topic_action = out.topic_action
        self.hold = out.hold_back_chars
        self.counts: Counter[str] = Counter()
        self.changed = False
        self.blocked = False

    def find(self, text: str) -> list[Span]:
        spans = find_entities(text) if self._pii != "allow" else []
        topics = self.policy.topics
        if topics is not None:
            spans += [
                Span(m.start(), m.end(), TOPIC)
                for m in topics.finditer(text)
                if m.end() > m.start()
            ]
            spans.sort(key=lambda s: (s.start, s.start - s.end))
        return spans

    def _action(self, span: Span) -> str:
        return self._topic_action if span.type == TOPIC else self._pii

    def _check(self, spans: list[Span]) -> None:
        stop = sorted({s.type for s in spans if self._action(s) == "block"})
        if stop:
            self.blocked = True
            self.counts.update(s.type for s in spans if self._action(s) == "block")
            raise OutputBlocked(stop)

    def apply(self, text: str, spans: list[Span]) -> str:
        """Count, redact per policy, restore placeholders; ``spans`` lie within ``text``."""
        self.counts.update(s.type for s in spans)
        gone = [s for s in _disjoint(spans) if self._action(s) == "redact"]
        if gone:
            self.changed = True
            text = mask(text, gone)
        return self.redactor.restore(text)

    def text(self, text: str) -> str:
        spans = self.find(text)
        self._check(spans)
        return self.apply(text, spans)

    def answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        """A checked copy of a JSON answer (choices' content and tool-call arguments)."""
        choices = []
        for choice in answer.get("choices") or ():
            message = dict(choice.get("message") or {})
            if isinstance(message.get("content"), str):
                message["content"] = self.text(message["content"])
            if message.get("tool_calls"):
                message["tool_calls"] = [
                    _restore_call(c, self.redactor.restore) for c in message["tool_calls"]
                ]
            choices.append({**choice, "message": message})
        return {**answer, "choices": choices}

    def verdict(self) -> dict[str, Any]:
        if self.blocked:
            action = "block"
        elif self.changed:
            action = "redact"
        else:
            action = "warn" if self.counts else "allow"
        return {"action": action, "entities": dict(self.counts)}


def _disjoint(spans: list[Span]) -> list[Span]:
    kept: list[Span] = []
    for span in spans:
        if not kept or span.start >= kept[-1].end:
            kept.append(span)
    return kept


def _restore_call(call: Any, restore: Any) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    return {**call, "function": {**function, "arguments": restore(function["arguments"])}}


class StreamFilter:
    """Canonical chunks in, checked chunks out, with a bounded hold-back per choice."""

    def __init__(self, guard: OutputGuard) -> None:
        self.guard = guard
        self._pending: dict[int, str] = {}
        self._reversible = guard.policy.rules.reversible

    def _feed(self, index: int, text: str, final: bool) -> str:
        guard = self.guard
        buf = self._pending.get(index, "") + text
        if not buf:
            return ""
        spans = guard.find(buf)
        guard._check(spans)
        cut = len(buf) if final else max(0, len(buf) - guard.hold)
        holds = spans
        if self._reversible:
            holds = [*spans, *(Span(m.start(), m.end(), "") for m in PLACEHOLDER.finditer(buf))]
        for span in sorted(holds, key=lambda s: s.start, reverse=True):
            if span.start < cut < span.end:
                cut = span.start
        if not final and self._reversible:
            lt = buf.rfind("<", max(0, cut - 24), cut)  # a placeholder still arriving
            if lt != -1 and ">" not in buf[lt:cut]:
                cut = lt
        self._pending[index] = buf[cut:]
        return guard.apply(buf[:cut], [s for s in spans if s.end <= cut])

    def chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """The chunk with its content checked (possibly shorter, or empty while held);
        raises ``OutputBlocked``."""
        choices = chunk.get("choices")
        if not choices:
            return chunk
        out = []
        for choice in choices:
            delta = choice.get("delta") or {}
            content = delta.get("content")
            final = choice.get("finish_reason") is not None
            index = int(choice.get("index") or 0)
            if isinstance(content, str) or (final and self._pending.get(index)):
                delta = {**delta, "content": self._feed(index, content or "", final)}
                choice = {**choice, "delta": delta}  # noqa: PLW2901
            out.append(choice)
        return {**chunk, "choices": out}

    def flush(self) -> dict[str, Any] | None:
        """What is still held when a stream ended without a finish reason, as a chunk."""
        choices = []
        for index in sorted(self._pending):
            if self._pending[index]:
                text = self._feed(index, "", True)
                choices.append({"index": index, "delta": {"content": text}, "finish_reason": None})
        return {"object": "chat.completion.chunk", "choices": choices} if choices else None


def event_outputs(
    inspection: Inspection, guard: OutputGuard | None, outputs: list[str]
) -> tuple[list[str], str, dict[str, Any]]:
    """(outputs, outputs_kept, verdict) for ``response.completed`` under the body policy.

    When no filter ran over the answer (nothing in the policy rewrites it) but the policy
    counts PII or topics, the texts are checked once here, off the client's path."""
    rules = inspection.policy.rules
    if guard is None:
        guard = OutputGuard(inspection)
        for text in outputs:
            guard.counts.update(s.type for s in guard.find(text))
    verdict = guard.verdict()
    if rules.body == "none":
        return [], "none", verdict
    if rules.body == "redacted":
        masked = [mask(t, _disjoint(find_entities(t))) for t in outputs]
        return masked, "redacted", verdict
    if guard.blocked:  # what the policy forbids is not kept either
        return [mask(t, _disjoint(guard.find(t))) for t in outputs], "redacted", verdict
    return outputs, "redacted" if guard.changed else "full", verdict
