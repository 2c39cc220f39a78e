"""Placeholders for one request: ``<EMAIL_1>``, ``<SECRET_2>``… and the way back.

The same value gets the same placeholder wherever it occurs in the request, so the model
can still tell two people apart, and a reversible policy can put the values back into the
answer. The map lives only in the request's memory; it is never logged or published.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container

from ingress.guards.patterns import Span

PLACEHOLDER = re.compile(r"<([A-Z]+(?:_[A-Z]+)*)_(\d{1,4})>")
"""What ``Redactor`` writes; output redactions (``<EMAIL_REDACTED>``) carry no number, so
they can never be "restored"."""


class Redactor:
    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        self.originals: dict[str, str] = {}

    def placeholder(self, entity: str, value: str) -> str:
        key = (entity, value)
        tag = self._by_value.get(key)
        if tag is None:
            n = self._counts[entity] = self._counts.get(entity, 0) + 1
            tag = self._by_value[key] = f"<{entity}_{n}>"
            self.originals[tag] = value
        return tag

    def redact(self, text: str, spans: list[Span], types: Container[str]) -> str:
        """``text`` with each span whose type is in ``types`` replaced by its placeholder."""
        parts: list[str] = []
        last = 0
        for span in spans:
            if span.type in types:
                parts.append(text[last : span.start])
                parts.append(self.placeholder(span.type, text[span.start : span.end]))
                last = span.end
        if not parts:
            return text
        parts.append(text[last:])
        return "".join(parts)

    def restore(self, text: str, *, in_json: bool = False) -> str:
        """``text`` with the placeholders put back. ``in_json``: ``text`` is JSON (tool-call
        arguments), where a placeholder can only stand inside a string, so the value goes
        back escaped (a key's newlines or a quote must not break the arguments)."""
        if "<" not in text or not self.originals:
            return text
        originals = self.originals
        if in_json:
            return PLACEHOLDER.sub(
                lambda m: _escaped(originals[m.group()]) if m.group() in originals else m.group(),
                text,
            )
        return PLACEHOLDER.sub(lambda m: originals.get(m.group(), m.group()), text)


def _escaped(value: str) -> str:
    """``value`` as it reads inside a JSON string, without the quotes."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def mask(text: str, spans: list[Span]) -> str:
    """``text`` with every span replaced by ``<TYPE_REDACTED>`` (for outputs: not reversible)."""
    parts: list[str] = []
    last = 0
    for span in spans:
        parts.append(text[last : span.start])
        parts.append(f"<{span.type}_REDACTED>")
        last = span.end
    parts.append(text[last:])
    return "".join(parts)
