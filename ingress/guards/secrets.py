"""Credentials in prompts: provider API keys, cloud and VCS tokens, JWTs, PEM private keys,
bearer tokens and high-entropy values assigned to ``password``/``api_key``-like names.

Every such secret is a run of 20+ token characters (letters, digits, ``_ - + /``). One
``bytes.translate`` marks token characters and a literal search finds the runs (prose has
almost none), so the per-format checks below run on a handful of strings, not on the text.
Look-alikes (``sk-learn``, ``sk-your-key-here``, ``AKIA`` in a sentence) fail the length,
alphabet or entropy checks.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator

from ingress.guards.patterns import Span

_TOKEN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+/-"
_RUN_TABLE = bytes(ord("x") if b in _TOKEN_CHARS else ord(" ") for b in range(256))
MIN_RUN = 20
_RUN = re.compile(b"x" * MIN_RUN + b"+")

_A = re.ASCII
_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("anthropic", re.compile(r"sk-ant-[A-Za-z0-9_-]{20,}", _A)),
    ("openai", re.compile(r"sk-(?:proj-|svcacct-|admin-)[A-Za-z0-9_-]{20,}", _A)),
    ("openai", re.compile(r"sk-[A-Za-z0-9]{20,}(?:T3BlbkFJ[A-Za-z0-9]{20,})?", _A)),
    ("aws", re.compile(r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])", _A)),
    ("github", re.compile(r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}", _A)),
    ("github", re.compile(r"github_pat_[A-Za-z0-9_]{22,}", _A)),
    ("google", re.compile(r"AIza[0-9A-Za-z_-]{35}", _A)),
    ("slack", re.compile(r"xox[abposr]-[0-9A-Za-z-]{10,}", _A)),
    ("stripe", re.compile(r"[sr]k_(?:live|test)_[0-9A-Za-z]{16,}", _A)),
)
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", _A)
PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
    re.S,
)
_BEARER = re.compile(r"(?i:\bbearer)\s+$")
_ASSIGNED = re.compile(
    r"(?i:secret|password|passwd|pwd|token|api[_-]?key|apikey|access[_-]?key|credentials?)"
    r"[\"']?\s*(?::|=|=>)\s*[\"']?$"
)
_PLACEHOLDER = re.compile(r"(?i:your|example|xxxx|placeholder|redacted|changeme|dummy|<|\.\.\.)")


def entropy(value: str) -> float:
    """Shannon entropy in bits per character: random keys ≈ 4-6, words and ids ≈ 2-3.5."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def runs(raw: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of every run of 20+ token characters in ``raw`` (one byte per character
    of the text, see ``scan.one_byte_per_char``)."""
    for m in _RUN.finditer(raw.translate(_RUN_TABLE)):
        yield m.start(), m.end()


def _classify(text: str, start: int, end: int) -> Span | None:
    run = text[start:end]
    head = run[:4]
    if head.startswith(("sk", "rk", "AK", "AS", "AB", "AC", "gh", "gi", "AI", "xo")):
        for kind, pattern in _FORMATS:
            m = pattern.match(text, start, end)
            if m and _random_enough(m.group()):
                return Span(m.start(), m.end(), "SECRET", kind)
    if head.startswith("eyJ"):
        m = JWT.match(text, start)
        if m:
            return Span(m.start(), m.end(), "SECRET", "jwt")
    before = text[max(0, start - 40) : start]
    # both regexes end at the run: string tests on its end say first whether one can match
    if before.rstrip()[-6:].lower() == "bearer" and _BEARER.search(before) and _random_enough(run):
        return Span(start, end, "SECRET", "bearer")
    if (
        _assigned_shape(before)
        and _ASSIGNED.search(before)
        and entropy(run) >= 3.5
        and _random_enough(run)
        and not _PLACEHOLDER.search(run)
    ):
        return Span(start, end, "SECRET", "assigned")
    return None


_QUOTES_SPACE = " \t\r\n\f\v\"'"
_NAMES = (
    "secret", "password", "passwd", "pwd", "token", "apikey", "api_key", "api-key", "accesskey",
    "access_key", "access-key", "credential", "credentials",
)  # fmt: skip


def _assigned_shape(before: str) -> bool:
    """``before`` ends with a secret-like name, ``:``/``=``/``=>``, spaces and quotes (a
    necessary condition of ``_ASSIGNED``, tested without a regex search)."""
    head = before.rstrip(_QUOTES_SPACE)
    if head[-1:] not in (":", "=", ">"):
        return False
    return head.rstrip(":=>").rstrip(_QUOTES_SPACE)[-12:].lower().endswith(_NAMES)


def _random_enough(value: str) -> bool:
    """A key mixes digits and letters; ``sk-your-api-key-goes-here`` does not."""
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    return has_digit and has_alpha and entropy(value) >= 3.0


def secrets(text: str, raw: bytes) -> list[Span]:
    spans: list[Span] = []
    if "-----BEGIN" in text:
        spans.extend(Span(m.start(), m.end(), "SECRET", "pem") for m in PEM.finditer(text))
    for start, end in runs(raw):
        if any(s.start <= start < s.end for s in spans):
            continue
        span = _classify(text, start, end)
        if span is not None:
            spans.append(span)
    return spans
