"""How a variant's answer compares with the baseline's: deterministic, stdlib only."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

MAX_CHARS = 20_000
"""Longer answers are compared on their first 20,000 characters (difflib is quadratic)."""


@dataclass(frozen=True, slots=True)
class Comparison:
    baseline: bool
    exact_match: bool = False
    similarity: float = 0.0
    structured: bool = False
    json_valid: bool = False


def wants_json(body: dict[str, Any]) -> bool:
    fmt = body.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def similarity(a: str, b: str) -> float:
    """difflib's ratio: 1.0 for equal texts, 0.0 for nothing in common."""
    if a == b:
        return 1.0
    return round(difflib.SequenceMatcher(None, a[:MAX_CHARS], b[:MAX_CHARS], False).ratio(), 6)


def json_valid(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def compare(body: dict[str, Any], baseline: list[str] | None, answer: list[str]) -> Comparison:
    """The first choice of each; without a baseline only JSON validity can be said."""
    text = answer[0] if answer else ""
    structured = wants_json(body)
    valid = structured and json_valid(text)
    if not baseline:
        return Comparison(False, structured=structured, json_valid=valid)
    text, base = text.strip(), baseline[0].strip()  # surrounding whitespace is no difference
    return Comparison(True, text == base, similarity(text, base), structured, valid)
