"""Cheap checks of a chat request: enough to give a precise 400, no whole-body model.

The body is parsed once with orjson and forwarded as parsed; only the fields the gateway
relies on (or that a provider would reject with a vaguer message) are checked.
"""

from __future__ import annotations

from typing import Any

import orjson

from ingress.errors import InvalidRequestError

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_MESSAGES = 4096


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequestError("request body is empty: send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequestError(f"request body must be a JSON object, not {type(body).__name__}")
    return body


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequestError(f"`{name}` must be an integer from {low} to {high}", param=name)


def _number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequestError(f"`{name}` must be a number from {low} to {high}", param=name)


def check_chat_request(body: dict[str, Any]) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(
            "`model` is required and must be a non-empty string", param="model"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("`messages` must be a non-empty array", param="messages")
    if len(messages) > MAX_MESSAGES:
        raise InvalidRequestError(
            f"too many messages ({len(messages)} > {MAX_MESSAGES})", param="messages"
        )
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequestError(f"`{where}` must be an object", param=where)
        if message.get("role") not in ROLES:
            raise InvalidRequestError(
                f"`{where}.role` must be one of {sorted(ROLES)}", param=f"{where}.role"
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidRequestError(
                f"`{where}.content` must be a string or an array of content parts",
                param=f"{where}.content",
            )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequestError("`stream` must be a boolean", param="stream")
    _integer(body, "max_tokens", 1, 10_000_000)
    _integer(body, "max_completion_tokens", 1, 10_000_000)
    _integer(body, "n", 1, 128)
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
