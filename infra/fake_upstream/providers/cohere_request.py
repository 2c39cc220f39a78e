"""Reading a Cohere v2 chat request (``/v2/chat``) as api.cohere.com validates it.

Prompt tokens count every message text, tool call (name and arguments), tool result and the
tool definitions, plus 85 per image (``reply.prompt_tokens``); Cohere's ``billed_units`` and
``tokens`` both report that number.
"""

from __future__ import annotations

from typing import Any

import orjson

from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.providers.anthropic_request import Prompt
from infra.fake_upstream.providers.reply import Ask, ToolSpec

FIELDS = frozenset(
    (
        "model", "messages", "tools", "strict_tools", "documents", "citation_options",
        "response_format", "safety_mode", "max_tokens", "stop_sequences", "temperature", "seed",
        "frequency_penalty", "presence_penalty", "k", "p", "logprobs", "tool_choice", "thinking",
        "stream", "priority",
    )
)  # fmt: skip
ROLES = ("system", "user", "assistant", "tool")


def invalid(message: str) -> ApiError:
    return ApiError(400, f"invalid request: {message}")


def _content(content: Any, where: str, prompt: Prompt) -> None:
    if isinstance(content, str):
        prompt.texts.append(content)
        return
    if not isinstance(content, list):
        raise invalid(f"{where}.content must be a string or a list of content blocks.")
    for item in content:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text" and isinstance(item.get("text"), str):
            prompt.texts.append(item["text"])
        elif kind == "image_url":
            prompt.images += 1
        elif kind == "document":
            prompt.texts.append(orjson.dumps(item.get("document")).decode())
        else:
            raise invalid(f"{where}.content: unknown content type '{kind}'.")


def _messages(body: dict[str, Any], prompt: Prompt) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages must not be empty.")
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        where = f"messages[{i}]"
        if role not in ROLES:
            raise invalid(f"{where}.role must be one of system, user, assistant, tool.")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise invalid(f"{where}.tool_call_id is required for tool messages.")
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            prompt.texts += [function.get("name", ""), function.get("arguments", "")]
        if role != "assistant" or message.get("content") is not None:
            _content(message.get("content"), where, prompt)
    return messages


def _tools(body: dict[str, Any], prompt: Prompt) -> tuple[ToolSpec, ...]:
    specs = []
    for i, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(function, dict):
            raise invalid(f"tools[{i}] must be of type 'function' with a function definition.")
        if not isinstance(function.get("name"), str):
            raise invalid(f"tools[{i}].function.name is required.")
        prompt.texts += [function["name"], function.get("description") or "",
                         orjson.dumps(function.get("parameters")).decode()]  # fmt: skip
        specs.append(ToolSpec(function["name"], function.get("parameters")))
    return tuple(specs)


def _range(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is not None and not (isinstance(value, int | float) and low <= value <= high):
        raise invalid(f"{name} must be between {low:g} and {high:g}.")


def parse(body: Any, default_tokens: int) -> tuple[Ask, Prompt]:
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object.")
    for name in body:
        if name not in FIELDS:
            raise invalid(f"unknown field: parameter {name} is not a valid field")
    if not isinstance(body.get("model"), str):
        raise invalid("model must be specified.")
    prompt = Prompt()
    messages = _messages(body, prompt)
    _range(body, "temperature", 0, 5)
    _range(body, "p", 0.01, 0.99)
    _range(body, "k", 0, 500)
    stop = body.get("stop_sequences") or []
    if not isinstance(stop, list) or len(stop) > 5:
        raise invalid("stop_sequences can have at most 5 items.")
    budget = body.get("max_tokens")
    if budget is not None and (not isinstance(budget, int) or budget < 1):
        raise invalid("max_tokens must be a positive integer.")
    specs = _tools(body, prompt)
    choice = body.get("tool_choice")
    if choice not in (None, "REQUIRED", "NONE"):
        raise invalid("tool_choice must be one of REQUIRED, NONE.")
    if choice is not None and not specs:
        raise invalid("tool_choice requires tools to be specified.")
    response_format = body.get("response_format") or {"type": "text"}
    is_json = response_format.get("type") == "json_object"
    ask = Ask(
        model=body["model"],
        material=messages,
        budget=budget if budget is not None and budget < default_tokens else None,
        default_tokens=default_tokens,
        stop=tuple(stop),
        tools=specs,
        tool_choice={"REQUIRED": "required", "NONE": "none"}.get(choice or "", "auto"),
        after_tool=messages[-1].get("role") == "tool",
        json_schema=(response_format.get("json_schema") or True) if is_json else None,
        seed=body.get("seed"),
    )
    return ask, prompt
