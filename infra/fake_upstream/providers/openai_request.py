"""Reading OpenAI chat requests beyond plain text: tools, response formats, logprobs, images.

Validation words its errors as api.openai.com does (param named, 400), so an adapter that
sends a malformed tool or schema fails here as it would upstream. Shared by the OpenAI,
Azure and Mistral routes (Mistral spells a forced tool call ``"any"``).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from infra.fake_upstream import errors
from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.providers.reply import IMAGE_TOKENS, ToolSpec
from schemas.tokens import count_chat_prompt, count_text

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
PART_TYPES = ("text", "image_url", "input_audio", "refusal", "audio", "file")


def tools(body: dict[str, Any]) -> tuple[ToolSpec, ...]:
    given = body.get("tools")
    if given is None:
        return ()
    if not isinstance(given, list):
        raise errors.invalid_type("tools", "an array", given)
    out = []
    for i, tool in enumerate(given):
        if not isinstance(tool, dict):
            raise errors.invalid_type(f"tools[{i}]", "an object", tool)
        if tool.get("type") != "function":
            raise (
                errors.missing(f"tools[{i}].type")
                if "type" not in tool
                else ApiError(
                    400,
                    f"Invalid value: '{tool['type']}'. Supported values are: 'function'.",
                    f"tools[{i}].type",
                    "invalid_value",
                )
            )
        function = tool.get("function")
        if not isinstance(function, dict):
            raise errors.missing(f"tools[{i}].function")
        name = function.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            message = (
                f"Invalid 'tools[{i}].function.name': string does not match pattern. "
                "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."
            )
            raise ApiError(400, message, f"tools[{i}].function.name", "invalid_value")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise errors.invalid_type(f"tools[{i}].function.parameters", "an object", parameters)
        out.append(ToolSpec(name, parameters))
    return tuple(out)


def tool_choice(body: dict[str, Any], specs: tuple[ToolSpec, ...], forced: str = "required") -> str:
    """``auto``, ``required``, ``none`` or the named tool; ``forced`` is the "any tool" word."""
    choice = body.get("tool_choice")
    if choice is None:
        return "auto" if specs else "none"
    if not specs:
        message = (
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified."
        )
        raise ApiError(400, message, "tool_choice", None)
    if choice in ("auto", "none", forced):
        return "required" if choice == forced else str(choice)
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or choice.get("type") != "function":
        words = ", ".join(f"'{w}'" for w in ("none", "auto", forced))
        message = f"Invalid value for 'tool_choice': expected one of {words}, or a named function."
        raise ApiError(400, message, "tool_choice", "invalid_value")
    if name not in {s.name for s in specs}:
        message = f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'."
        raise ApiError(400, message, "tool_choice", "invalid_value")
    return name


def response_format(body: dict[str, Any]) -> Any:
    """None (text), True (``json_object``) or the ``json_schema`` schema."""
    given = body.get("response_format")
    if given is None:
        return None
    if not isinstance(given, dict):
        raise errors.invalid_type("response_format", "an object", given)
    kind = given.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return True
    if kind != "json_schema":
        message = (
            f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object', and "
            "'json_schema'."
        )
        raise ApiError(400, message, "response_format.type", "invalid_value")
    spec = given.get("json_schema")
    if not isinstance(spec, dict):
        raise errors.missing("response_format.json_schema")
    if not isinstance(spec.get("name"), str) or not NAME.match(spec["name"]):
        raise errors.missing("response_format.json_schema.name")
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise errors.invalid_type("response_format.json_schema.schema", "an object", schema)
    return schema


def top_logprobs(body: dict[str, Any]) -> int | None:
    """None without ``logprobs``; else how many alternatives each token lists (0 to 20)."""
    wanted = body.get("logprobs")
    top = body.get("top_logprobs")
    if wanted not in (None, True, False):
        raise errors.invalid_type("logprobs", "a boolean", wanted)
    if top is not None:
        if not isinstance(top, int) or isinstance(top, bool):
            raise errors.invalid_type("top_logprobs", "an integer", top)
        if top < 0:
            raise errors.below_minimum("top_logprobs", 0, top)
        if top > 20:
            raise errors.above_maximum("top_logprobs", 20, top)
        if wanted is not True:
            message = "Invalid value for 'top_logprobs': 'logprobs' must be set to true."
            raise ApiError(400, message, "top_logprobs", "invalid_value")
    return (top or 0) if wanted is True else None


def content_parts(messages: list[dict[str, Any]]) -> int:
    """Validates content parts; returns how many images the prompt carries."""
    images = 0
    for i, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            where = f"messages[{i}].content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in PART_TYPES:
                listed = ", ".join(f"'{t}'" for t in PART_TYPES[:-1])
                message_text = (
                    f"Invalid value: '{kind}'. Supported values are: {listed}, and 'file'."
                )
                raise ApiError(400, message_text, f"{where}.type", "invalid_value")
            if kind == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else None
                if not isinstance(url, str) or not url.startswith(("data:image/", "http")):
                    raise ApiError(
                        400, "Invalid image URL.", f"{where}.image_url.url", "invalid_image_url"
                    )
                images += 1
    return images


def prompt_tokens(messages: list[dict[str, Any]], model: str, specs_json: Any) -> int:
    """OpenAI's chat framing, plus images, tool calls in the history and tool definitions."""
    total = count_chat_prompt(messages, model) + IMAGE_TOKENS * content_parts(messages)
    for message in messages:
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                text = f"{function.get('name', '')}{function.get('arguments', '')}"
                total += count_text(text, model)
    if specs_json:
        total += count_text(orjson.dumps(specs_json).decode(), model)
    return total
