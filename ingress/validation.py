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


_INTEGERS = {
    "max_tokens": (1, 10_000_000),
    "max_completion_tokens": (1, 10_000_000),
    "n": (1, 128),
    "top_logprobs": (0, 20),
    "seed": (-(2**63), 2**63 - 1),
}
_NUMBERS = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
}


def _check_ranges(body: dict[str, Any]) -> None:
    """The numeric parameters the body has, walked by its keys (a few), not looked up
    nine times."""
    for name, value in body.items():
        if value is None:
            continue
        bounds = _INTEGERS.get(name)
        if bounds is not None:
            low, high = bounds
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidRequestError(
                    f"`{name}` must be an integer from {low} to {high}", param=name
                )
            continue
        bounds = _NUMBERS.get(name)
        if bounds is not None:
            low, high = bounds
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not low <= value <= high:
                raise InvalidRequestError(
                    f"`{name}` must be a number from {low} to {high}", param=name
                )


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
        if not isinstance(message, dict):
            raise InvalidRequestError(f"`messages[{i}]` must be an object", param=f"messages[{i}]")
        if message.get("role") not in ROLES:
            raise InvalidRequestError(
                f"`messages[{i}].role` must be one of {sorted(ROLES)}", param=f"messages[{i}].role"
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidRequestError(
                f"`messages[{i}].content` must be a string or an array of content parts",
                param=f"messages[{i}].content",
            )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequestError("`stream` must be a boolean", param="stream")
    _check_ranges(body)
    _check_stop(body.get("stop"))
    _check_tools(body)
    _check_response_format(body.get("response_format"))
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict) or not stream):
        raise InvalidRequestError(
            "`stream_options` must be an object and is only allowed with `stream: true`",
            param="stream_options",
        )


def _check_stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop):
        raise InvalidRequestError("`stop` must be a string or up to 4 strings", param="stop")


def _check_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequestError("`tools` must be an array", param="tools")
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if (
                not isinstance(tool, dict)
                or tool.get("type") != "function"
                or not isinstance(function, dict)
                or not isinstance(function.get("name"), str)
            ):
                raise InvalidRequestError(
                    f'`tools[{i}]` must be {{"type": "function", "function": {{"name": ...}}}}',
                    param=f"tools[{i}]",
                )
    choice = body.get("tool_choice")
    if choice is None or choice in ("none", "auto", "required"):
        return
    if not isinstance(choice, dict) or not isinstance(
        (choice.get("function") or {}).get("name"), str
    ):
        raise InvalidRequestError(
            '`tool_choice` must be none, auto, required or {"type": "function", '
            '"function": {"name": ...}}',
            param="tool_choice",
        )


def _check_response_format(fmt: Any) -> None:
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise InvalidRequestError(
            "`response_format.type` must be text, json_object or json_schema",
            param="response_format",
        )
    if kind == "json_schema" and not isinstance((fmt.get("json_schema") or {}).get("name"), str):
        raise InvalidRequestError(
            "`response_format.json_schema` needs a `name` and a `schema`",
            param="response_format.json_schema",
        )


def check_embeddings_request(body: dict[str, Any]) -> list[str]:
    """The inputs as strings (token-array inputs are passed through as they are)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(
            "`model` is required and must be a non-empty string", param="model"
        )
    given = body.get("input")
    items = [given] if isinstance(given, str) else given
    if not isinstance(items, list) or not items or len(items) > 2048:
        raise InvalidRequestError(
            "`input` must be a string or an array of 1 to 2048 strings", param="input"
        )
    if all(isinstance(i, str) for i in items):
        if any(not i for i in items):
            raise InvalidRequestError("`input` must not contain empty strings", param="input")
        return list(items)
    if all(isinstance(i, int) for i in items) or all(
        isinstance(i, list) and all(isinstance(t, int) for t in i) for i in items
    ):
        return []
    raise InvalidRequestError(
        "`input` must be a string, an array of strings or of token arrays", param="input"
    )
