"""A deterministic value that satisfies a JSON schema: tool arguments and structured output.

Covers what function and response schemas use in practice: object (every property, so every
``required`` one), string (enum, const, formats, min/max length), number and integer (bounds),
boolean, null, array (items, min/max items), ``anyOf``/``oneOf``/``allOf`` and local ``$ref``
into ``$defs``/``definitions``. Gemini's upper-case type names (``OBJECT``) are read too.
"""

from __future__ import annotations

import random
from typing import Any

WORDS = (
    "alpha", "bravo", "cedar", "delta", "ember", "fjord", "grove", "harbor", "indigo",
    "juniper", "kestrel", "lumen", "meadow", "nectar", "orchid", "prairie", "quartz",
    "river", "summit", "tundra", "umber", "valley", "willow", "yonder", "zephyr",
)  # fmt: skip
FORMATS = {
    "date": "2024-05-01",
    "date-time": "2024-05-01T12:00:00Z",
    "time": "12:00:00",
    "email": "ada@example.com",
    "uri": "https://example.com/a",
    "url": "https://example.com/a",
    "uuid": "123e4567-e89b-42d3-a456-426614174000",
    "ipv4": "192.0.2.1",
}
MAX_DEPTH = 8


def value_for(schema: Any, seed: bytes) -> Any:
    """The value for ``schema``; the same schema and seed always give the same value."""
    root = schema if isinstance(schema, dict) else {}
    return _value(root, random.Random(seed), root, 0)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    node: Any = root
    for part in ref[2:].split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    if isinstance(kind, str):
        return kind.lower()
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _value(schema: dict[str, Any], rng: random.Random, root: dict[str, Any], depth: int) -> Any:
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key) or [] if isinstance(o, dict)]
        usable = [o for o in options if _type(_resolve(o, root)) != "null"]
        if usable:
            return _value(usable[0], rng, root, depth + 1)
    kind = _type(schema)
    if kind == "object":
        return _object(schema, rng, root, depth)
    if kind == "array":
        return _array(schema, rng, root, depth)
    if kind == "integer":
        low, high = _bounds(schema, 0, 100)
        return rng.randint(int(low), int(max(low, high)))
    if kind == "number":
        low, high = _bounds(schema, 0, 100)
        return round(rng.uniform(low, max(low, high)), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _string(schema, rng)


def _object(
    schema: dict[str, Any], rng: random.Random, root: dict[str, Any], depth: int
) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict) or depth >= MAX_DEPTH:
        return {}
    return {
        name: _value(sub if isinstance(sub, dict) else {}, rng, root, depth + 1)
        for name, sub in properties.items()
    }


def _array(schema: dict[str, Any], rng: random.Random, root: dict[str, Any], depth: int) -> list:
    low = schema.get("minItems", 1)
    high = schema.get("maxItems", max(low, 2))
    count = min(max(low, 1), high) if depth < MAX_DEPTH else 0
    given = schema.get("items")
    items: dict[str, Any] = given if isinstance(given, dict) else {}
    return [_value(items, rng, root, depth + 1) for _ in range(count)]


def _bounds(schema: dict[str, Any], low: float, high: float) -> tuple[float, float]:
    if isinstance(schema.get("minimum"), int | float):
        low = schema["minimum"]
        high = max(high, low)
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        low = schema["exclusiveMinimum"] + 1
        high = max(high, low)
    if isinstance(schema.get("maximum"), int | float):
        high = schema["maximum"]
        low = min(low, high)
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        high = schema["exclusiveMaximum"] - 1
        low = min(low, high)
    return low, high


def _string(schema: dict[str, Any], rng: random.Random) -> str:
    if schema.get("format") in FORMATS:
        return FORMATS[schema["format"]]
    text = " ".join(rng.choice(WORDS) for _ in range(2))
    low = schema.get("minLength", 0)
    high = schema.get("maxLength")
    while len(text) < low:
        text += " " + rng.choice(WORDS)
    return text[:high] if isinstance(high, int) else text
