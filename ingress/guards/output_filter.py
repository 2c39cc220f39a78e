"""Checks on the answer: PII leaks and blocked topics, redacted or blocked per policy, and
the request's placeholders put back when the policy is reversible.

A stream is checked as it flows. Each choice's text waits in a buffer of at most
``hold_back_chars`` characters (plus the chunk that just came): whatever could still be
the start of a match stays, everything before it goes out, already checked. A match that
straddles the cut moves the cut to its start, so an entity split across chunks is caught
whole, as long as it is no longer than the hold-back. Filtering runs before restoring, so
the caller's own values coming back are never mistaken for a leak.

Tool-call arguments go through the same checks, JSON and streamed: a streamed call's
argument fragments wait in a buffer of their own per (choice, call), written back into the
fragment they came in. What a call still holds goes out when the next call of the choice
starts (its fragments are over), and a choice's held text when its first tool call starts;
the rest at the finish chunk (or when the stream ends without one). Arguments are JSON:
a redaction never starts inside an escape (``\\n``), and restored values go back
JSON-escaped, so arguments that were valid JSON stay valid.
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

    def apply(self, text: str, spans: list[Span], *, in_json: bool = False) -> str:
        """Count, redact per policy, restore placeholders; ``spans`` lie within ``text``.
        ``in_json``: ``text`` is (part of) tool-call arguments."""
        self.counts.update(s.type for s in spans)
        gone = [s for s in _disjoint(spans) if self._action(s) == "redact"]
        if gone:
            self.changed = True
            if in_json:
                gone = [g for g in (_past_escape(text, s) for s in gone) if g.end > g.start]
            text = mask(text, gone)
        return self.redactor.restore(text, in_json=in_json)

    def text(self, text: str, *, in_json: bool = False) -> str:
        spans = self.find(text)
        self._check(spans)
        return self.apply(text, spans, in_json=in_json)

    def answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        """A checked copy of a JSON answer (choices' content, tool-call arguments and a
        legacy ``function_call``'s arguments)."""
        choices = []
        for choice in answer.get("choices") or ():
            message = dict(choice.get("message") or {})
            if isinstance(message.get("content"), str):
                message["content"] = self.text(message["content"])
            if message.get("tool_calls"):
                message["tool_calls"] = [
                    {**c, "function": self._function(c["function"])}
                    if isinstance(c, dict) and isinstance(c.get("function"), dict)
                    else c
                    for c in message["tool_calls"]
                ]
            if isinstance(message.get("function_call"), dict):
                message["function_call"] = self._function(message["function_call"])
            choices.append({**choice, "message": message})
        return {**answer, "choices": choices}

    def _function(self, function: dict[str, Any]) -> dict[str, Any]:
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            return function
        return {**function, "arguments": self.text(arguments, in_json=True)}

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


def _escape_at(text: str, cut: int) -> int:
    """Where the JSON escape that ``cut`` falls inside starts, or ``cut``."""
    for b in range(cut - 1, max(-1, cut - 6), -1):
        if text[b] == "\\":
            run = 1
            while b - run >= 0 and text[b - run] == "\\":
                run += 1
            if run % 2 and b + (6 if text[b + 1 : b + 2] == "u" else 2) > cut:
                return b
            break
    return cut


def _json_cut(text: str, cut: int, holds: list[Span]) -> int:
    """``cut`` moved back until it splits neither an escape nor a held span: a held part
    of tool-call arguments always starts where JSON text can start."""
    while True:
        moved = _escape_at(text, cut)
        for span in holds:
            if span.start < moved < span.end:
                moved = span.start
        if moved == cut:
            return cut
        cut = moved


def _past_escape(text: str, span: Span) -> Span:
    """``span`` starting after a JSON escape it would otherwise cut (``\\nada@x.org``: the
    ``n`` belongs to the escape), so masking leaves the JSON valid."""
    start = span.start
    run = 0
    while start - run > 0 and text[start - run - 1] == "\\":
        run += 1
    if run % 2 == 0:
        return span
    skip = 5 if text[start : start + 1] == "u" else 1
    return span._replace(start=min(start + skip, span.end))


class StreamFilter:
    """Canonical chunks in, checked chunks out, with a bounded hold-back per choice (and per
    streamed tool call)."""

    def __init__(self, guard: OutputGuard) -> None:
        self.guard = guard
        self._pending: dict[int, str] = {}
        self._calls: dict[tuple[int, int], str] = {}
        """Held tool-call arguments per (choice, call position)."""
        self._current: dict[int, int] = {}
        """Per choice, the position of the call whose fragments are arriving."""
        self._reversible = guard.policy.rules.reversible

    def _feed(
        self, held: dict[Any, str], key: Any, text: str, final: bool, in_json: bool = False
    ) -> str:
        guard = self.guard
        buf = held.get(key, "") + text
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
        if in_json and not final:
            cut = _json_cut(buf, cut, holds)
        held[key] = buf[cut:]
        return guard.apply(buf[:cut], [s for s in spans if s.end <= cut], in_json=in_json)

    def chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """The chunk with its content and tool-call arguments checked (possibly shorter, or
        empty while held); raises ``OutputBlocked``."""
        choices = chunk.get("choices")
        if not choices:
            return chunk
        out = []
        for choice in choices:
            delta = choice.get("delta") or {}
            content = delta.get("content")
            final = choice.get("finish_reason") is not None
            index = int(choice.get("index") or 0)
            calls = delta.get("tool_calls")
            if calls or (final and self._calls):
                choice = {**choice, "delta": self._with_calls(index, delta, calls, final)}  # noqa: PLW2901
            elif isinstance(content, str) or (final and self._pending.get(index)):
                delta = {**delta, "content": self._feed(self._pending, index, content or "", final)}
                choice = {**choice, "delta": delta}  # noqa: PLW2901
            out.append(choice)
        return {**chunk, "choices": out}

    def _with_calls(
        self, index: int, delta: dict[str, Any], calls: Any, final: bool
    ) -> dict[str, Any]:
        """A delta that carries tool calls (or finishes a choice that had some): the text
        held so far goes out first, then each call's checked fragment, in the shape sent."""
        delta = dict(delta)
        content = delta.get("content")
        if isinstance(content, str) or self._pending.get(index):
            text = self._feed(self._pending, index, content or "", final or bool(calls))
            delta["content"] = text
        out: list[Any] = []
        for call in calls or ():
            if not isinstance(call, dict):
                out.append(call)
                continue
            position = int(call.get("index") or 0)
            current = self._current.get(index)
            if current is not None and current != position:
                out += self._tail(index, current)  # the previous call is over
            self._current[index] = position
            function = call.get("function")
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                arguments = self._feed(
                    self._calls, (index, position), function["arguments"], final, True
                )
                call = {**call, "function": {**function, "arguments": arguments}}  # noqa: PLW2901
            out.append(call)
        if final:
            for key in sorted(k for k in self._calls if k[0] == index):
                out += self._tail(index, key[1])
            self._current.pop(index, None)
        if out or calls is not None:
            delta["tool_calls"] = out
        return delta

    def _tail(self, index: int, position: int) -> list[dict[str, Any]]:
        """What the call at ``position`` still holds, as one more fragment of it."""
        if not self._calls.get((index, position)):
            self._calls.pop((index, position), None)
            return []
        arguments = self._feed(self._calls, (index, position), "", True, True)
        del self._calls[index, position]
        return [{"index": position, "function": {"arguments": arguments}}]

    def flush(self) -> dict[str, Any] | None:
        """What is still held when a stream ended without a finish reason, as a chunk."""
        choices = []
        for index in sorted({*self._pending, *(k[0] for k in self._calls)}):
            delta: dict[str, Any] = {}
            if self._pending.get(index):
                delta["content"] = self._feed(self._pending, index, "", True)
            tails = [t for key in sorted(self._calls) if key[0] == index for t in self._tail(*key)]
            if tails:
                delta["tool_calls"] = tails
            if delta:
                choices.append({"index": index, "delta": delta, "finish_reason": None})
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
