"""Reading an Anthropic Messages request as api.anthropic.com validates it.

Errors are worded the way Anthropic words pydantic-style failures (``max_tokens: Field
required``, ``foo: Extra inputs are not permitted``). Prompt tokens count every text the
request carried (system, text blocks, tool inputs and results, tool definitions) plus 85 per
image: ``reply.prompt_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.providers.reply import Ask, ToolSpec

FIELDS = frozenset(
    (
        "model", "messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p",
        "top_k", "tools", "tool_choice", "stream", "metadata", "thinking", "service_tier",
        "container", "mcp_servers", "context_management",
    )
)  # fmt: skip
BLOCKS = ("text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking")
MEDIA = ("image/jpeg", "image/png", "image/gif", "image/webp")
NO_COUNT = frozenset(("max_tokens",))


def bad(message: str) -> ApiError:
    return ApiError(400, message, kind="invalid_request_error")


@dataclass(slots=True)
class Prompt:
    texts: list[str] = field(default_factory=list)
    images: int = 0


def _number(body: dict[str, Any], name: str, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise bad(f"{name}: Input should be a valid number")
    if not 0 <= value <= high:
        raise bad(f"{name}: Input should be less than or equal to {high:g}")


def _block(block: Any, where: str, prompt: Prompt) -> None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind not in BLOCKS:
        tags = ", ".join(f"'{b}'" for b in BLOCKS)
        raise bad(
            f"{where}: Input tag '{kind}' found using 'type' does not match any of the "
            f"expected tags: {tags}"
        )
    if kind == "text":
        if not isinstance(block.get("text"), str):
            raise bad(f"{where}.text: Field required")
        prompt.texts.append(block["text"])
    elif kind == "image":
        source = block.get("source")
        ok = isinstance(source, dict) and (
            (
                source.get("type") == "base64"
                and source.get("media_type") in MEDIA
                and isinstance(source.get("data"), str)
            )
            or (source.get("type") == "url" and isinstance(source.get("url"), str))
        )
        if not ok:
            raise bad(f"{where}.source: Input should be a valid base64 or url image source")
        prompt.images += 1
    elif kind == "tool_use":
        if not all(isinstance(block.get(k), str) for k in ("id", "name")):
            raise bad(f"{where}: tool_use blocks need 'id' and 'name'")
        if not isinstance(block.get("input"), dict):
            raise bad(f"{where}.input: Input should be a valid dictionary")
        prompt.texts += [block["name"], orjson.dumps(block["input"]).decode()]
    elif kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise bad(f"{where}.tool_use_id: Field required")
        content = block.get("content", "")
        if isinstance(content, str):
            prompt.texts.append(content)
        else:
            for i, inner in enumerate(content if isinstance(content, list) else [None]):
                _block(inner, f"{where}.content.{i}", prompt)


def _messages(body: dict[str, Any], prompt: Prompt) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise bad(
            "messages: Field required"
            if messages is None
            else "messages: Input should be a valid list"
        )
    if not messages:
        raise bad("messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad(f"messages.{i}: Input should be a valid dictionary")
        if message.get("role") not in ("user", "assistant"):
            raise bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            prompt.texts.append(content)
        elif isinstance(content, list):
            for j, block in enumerate(content):
                _block(block, f"messages.{i}.content.{j}", prompt)
        else:
            raise bad(f"messages.{i}.content: Field required")
    return messages


def _tools(body: dict[str, Any], prompt: Prompt) -> tuple[ToolSpec, ...]:
    given = body.get("tools") or []
    if not isinstance(given, list):
        raise bad("tools: Input should be a valid list")
    specs = []
    for i, tool in enumerate(given):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise bad(f"tools.{i}.name: Field required")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise bad(f"tools.{i}.custom.input_schema: Input should be an object schema")
        prompt.texts += [tool["name"], tool.get("description") or "", orjson.dumps(schema).decode()]
        specs.append(ToolSpec(tool["name"], schema))
    return tuple(specs)


def _tool_choice(body: dict[str, Any], specs: tuple[ToolSpec, ...]) -> str:
    choice = body.get("tool_choice")
    if choice is None:
        return "auto"
    if not specs:
        raise bad("tool_choice may only be specified while providing tools.")
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("auto", "none"):
        return str(kind)
    if kind == "any":
        return "required"
    if kind == "tool" and choice.get("name") in {s.name for s in specs}:
        return str(choice["name"])
    raise bad("tool_choice: Input should be auto, any, none, or a tool named in 'tools'")


def parse(body: Any, default_tokens: int, count_only: bool = False) -> tuple[Ask, Prompt]:
    """The ``Ask`` and the prompt's texts; ``count_only`` for ``/v1/messages/count_tokens``."""
    if not isinstance(body, dict):
        raise bad("Input should be a valid dictionary or object to extract fields from")
    fields = FIELDS - NO_COUNT if count_only else FIELDS
    for name in body:
        if name not in fields:
            raise bad(f"{name}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str):
        raise bad("model: Field required")
    budget = body.get("max_tokens")
    if not count_only and (not isinstance(budget, int) or isinstance(budget, bool)):
        raise bad(
            "max_tokens: Field required"
            if budget is None
            else "max_tokens: Input should be a valid integer"
        )
    budget = budget if isinstance(budget, int) else None
    if budget is not None and budget < 1:
        raise bad("max_tokens: Input should be greater than or equal to 1")
    prompt = Prompt()
    system = body.get("system")
    if isinstance(system, str):
        prompt.texts.append(system)
    elif isinstance(system, list):
        for i, block in enumerate(system):
            _block(block, f"system.{i}", prompt)
    messages = _messages(body, prompt)
    _number(body, "temperature", 1)
    _number(body, "top_p", 1)
    stop = body.get("stop_sequences") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise bad("stop_sequences: Input should be a valid list of strings")
    metadata = body.get("metadata") or {}
    extra = [k for k in metadata if k != "user_id" and not k.startswith("fake_")]
    if extra:
        raise bad(f"metadata.{extra[0]}: Extra inputs are not permitted")
    specs = _tools(body, prompt)
    last = messages[-1].get("content")
    after_tool = isinstance(last, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last
    )
    ask = Ask(
        model=body["model"],
        material=[body.get("system"), messages],
        budget=budget if budget is not None and budget < default_tokens else None,
        default_tokens=default_tokens,
        stop=tuple(stop),
        tools=specs,
        tool_choice=_tool_choice(body, specs),
        after_tool=after_tool,
    )
    return ask, prompt
