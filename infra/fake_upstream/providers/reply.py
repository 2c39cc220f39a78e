"""What the model "says", the same for every wire format: text, a tool call or a JSON document.

Each provider turns its request into an ``Ask`` and its ``Reply`` into its own shapes. Usage is
exact for every provider: completion tokens are ``count_text`` of the text (or of the tool
call's arguments as compact JSON), and ``prompt_tokens`` below counts what the fake received.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from infra.fake_upstream.providers.schema_values import value_for
from infra.fake_upstream.text import completion, request_key
from schemas.tokens import count_text, encoding_for_model

IMAGE_TOKENS = 85
"""Every image costs this many prompt tokens, whatever its size (OpenAI's low-detail price)."""
Finish = Literal["stop", "length", "stop_sequence", "tool"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    schema: Any = None


@dataclass(frozen=True, slots=True)
class Ask:
    model: str
    material: Any
    """What the answer depends on (the conversation), hashed with ``seed`` and ``index``."""
    budget: int | None
    default_tokens: int
    stop: tuple[str, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str = "auto"
    """``auto``, ``required`` (any tool), ``none``, or a tool's name."""
    after_tool: bool = False
    """The last message carries a tool's result: answer in text, so a round trip ends."""
    json_schema: Any = None
    """None: prose; True: any JSON object; a dict: a document satisfying that schema."""
    seed: Any = None
    index: int = 0


@dataclass(frozen=True, slots=True)
class ToolCall:
    ref: str
    """24 hex digits, stable per request: providers prefix it (``call_``, ``toolu_``)."""
    name: str
    arguments: dict[str, Any]
    text: str = field(default="")
    """The arguments as compact JSON, as streamed and counted."""


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    finish: Finish
    tokens: int
    stop_sequence: str | None = None
    tool: ToolCall | None = None


def _tool(ask: Ask) -> ToolSpec | None:
    if not ask.tools or ask.tool_choice == "none" or ask.after_tool:
        return None
    if ask.tool_choice in ("auto", "required"):
        return ask.tools[0]
    return next((t for t in ask.tools if t.name == ask.tool_choice), ask.tools[0])


def cut(text: str, model: str, budget: int) -> str:
    """The first ``budget`` tokens of ``text``."""
    encoding = encoding_for_model(model)
    return encoding.decode(encoding.encode(text, disallowed_special=())[:budget])


def _stop(text: str, stop: Iterable[str]) -> tuple[str, str | None]:
    """Cut before the earliest stop sequence (not returned), and which one it was."""
    found = [(text.find(s), s) for s in stop if s and s in text]
    if not found:
        return text, None
    at, sequence = min(found)
    return text[:at], sequence


def reply(ask: Ask) -> Reply:
    key = request_key(ask.material, ask.seed, ask.index)
    tool = _tool(ask)
    if tool is not None:
        arguments = value_for(tool.schema, key)
        if not isinstance(arguments, dict):
            arguments = {"value": arguments}
        text = orjson.dumps(arguments).decode()
        call = ToolCall(
            hashlib.blake2b(key, digest_size=12).hexdigest(), tool.name, arguments, text
        )
        return Reply("", "tool", count_text(text, ask.model), tool=call)
    if ask.json_schema is not None:
        schema = ask.json_schema if isinstance(ask.json_schema, dict) else _ANY_OBJECT
        text = orjson.dumps(value_for(schema, key)).decode()
        tokens = count_text(text, ask.model)
        if ask.budget is not None and tokens > ask.budget:
            return Reply(cut(text, ask.model, ask.budget), "length", ask.budget)
        return Reply(text, "stop", tokens)
    tokens = ask.budget or ask.default_tokens
    text, sequence = _stop(completion(ask.model, key, tokens, ask.budget is None), ask.stop)
    if sequence is not None:
        return Reply(text, "stop_sequence", count_text(text, ask.model), sequence)
    return Reply(text, "length" if ask.budget is not None else "stop", tokens)


_ANY_OBJECT = {"type": "object", "properties": {"answer": {"type": "string"}}}


def prompt_tokens(model: str, texts: Iterable[str], images: int = 0) -> int:
    """Prompt tokens for the non-OpenAI formats: every text the request carried, plus images."""
    return sum(count_text(t, model) for t in texts) + IMAGE_TOKENS * images
