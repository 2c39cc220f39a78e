"""One pass over a text: every PII and secret span, without overlaps, in order."""

from __future__ import annotations

from ingress.guards.patterns import SHAPE, Span, emails, ibans, ipv6, numbers
from ingress.guards.secrets import secrets


def one_byte_per_char(text: str) -> bytes:
    """The text as bytes at the same positions: non-ASCII characters become ``?`` (no
    detector looks for them), so byte offsets found in it are character offsets."""
    return text.encode() if text.isascii() else text.encode("ascii", "replace")


def find_entities(text: str) -> list[Span]:
    """Spans sorted by start; where two overlap the earlier (then longer) one wins, and
    secrets are looked for first so a key's digits are never also a phone number."""
    if len(text) < 6:
        return []
    raw = one_byte_per_char(text)
    found = secrets(text, raw)
    if "@" in text:
        found += emails(text)
    shape = raw.translate(SHAPE)
    if b"0" in shape:
        found += numbers(text, shape)
        if b"A" in shape:
            found += ibans(text, shape)
        if "::" in text or text.count(":") >= 7:
            found += ipv6(text)
    if len(found) < 2:
        return found
    found.sort(key=lambda s: (s.start, s.start - s.end))
    kept = [found[0]]
    for span in found[1:]:
        if span.start >= kept[-1].end:
            kept.append(span)
    return kept
