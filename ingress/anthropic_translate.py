"""Anthropic Messages ↔ canonical (OpenAI) chat, for the ``/v1/messages`` front door.

The mirror image of ``providers/anthropic.py``: that one speaks Anthropic to a provider,
this one listens to Anthropic from a client.
"""

from __future__ import annotations

from typing import Any

import orjson

from ingress.errors import InvalidRequestError
from ingress.providers.anthropic import tool_use_block

Json = dict[str, Any]
STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or () if b.get("type") == "text")


def to_canonical(body: Json) -> Json:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequestError("model: Field required", param="model")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequestError("max_tokens: a positive integer is required", param="max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("messages: a non-empty array is required", param="messages")
    out: list[Json] = []
    if body.get("system"):
        out.append({"role": "system", "content": _text(body["system"])})
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ("user", "assistant"):
            raise InvalidRequestError(
                f"messages.{i}.role: must be `user` or `assistant`", param=f"messages.{i}.role"
            )
        out.extend(_user(msg["content"]) if role == "user" else [_assistant(msg["content"])])
    canonical: Json = {"model": body["model"], "messages": out, "max_tokens": max_tokens}
    for name in ("temperature", "top_p", "stream"):
        if body.get(name) is not None:
            canonical[name] = body[name]
    if body.get("stop_sequences"):
        canonical["stop"] = list(body["stop_sequences"])
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        canonical["user"] = user
    _tools(body, canonical)
    return canonical


def _user(content: Any) -> list[Json]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    parts: list[Json] = []
    results: list[Json] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            source = block.get("source") or {}
            url = (
                f"data:{source.get('media_type')};base64,{source.get('data')}"
                if source.get("type") == "base64"
                else source.get("url", "")
            )
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "tool_result":
            results.append(
                {
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id", ""),
                    "content": _text(block.get("content")),
                }
            )
    messages = results  # tool results answer the previous assistant turn: they go first
    if parts:
        messages.append({"role": "user", "content": parts})
    return messages


def _assistant(content: Any) -> Json:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    calls = [
        {
            "id": block.get("id"),
            "type": "function",
            "function": {
                "name": block.get("name"),
                "arguments": orjson.dumps(block.get("input") or {}).decode(),
            },
        }
        for block in content
        if block.get("type") == "tool_use"
    ]
    message: Json = {"role": "assistant", "content": _text(content) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tools(body: Json, canonical: Json) -> None:
    tools = body.get("tools")
    if not tools:
        return
    canonical["tools"] = [
        {
            "type": "function",
            "function": {
                "name": t["name"],
                "description": t.get("description", ""),
                "parameters": t.get("input_schema") or {"type": "object"},
            },
        }
        for t in tools
    ]
    choice = body.get("tool_choice") or {}
    kind = choice.get("type")
    if kind == "any":
        canonical["tool_choice"] = "required"
    elif kind == "tool":
        canonical["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif kind in ("auto", "none"):
        canonical["tool_choice"] = kind
    if choice.get("disable_parallel_tool_use"):
        canonical["parallel_tool_calls"] = False


def _usage(usage: Json | None) -> Json:
    usage = usage or {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return {
        "input_tokens": (usage.get("prompt_tokens") or 0) - cached,
        "output_tokens": usage.get("completion_tokens") or 0,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def to_anthropic_message(answer: Json, model: str) -> Json:
    choice = (answer.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    blocks: list[Json] = []
    if message.get("content"):
        blocks.append({"type": "text", "text": message["content"]})
    blocks.extend(tool_use_block(call) for call in message.get("tool_calls") or ())
    return {
        "id": answer.get("id") or "msg_tollgate",
        "type": "message",
        "role": "assistant",
        "model": answer.get("model") or model,
        "content": blocks,
        "stop_reason": STOP_REASON.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": _usage(answer.get("usage")),
    }


def _sse(name: str, data: Json) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessageEvents:
    """Canonical chunks → Anthropic's stream events, one content block at a time."""

    def __init__(self, id: str, model: str) -> None:
        self.id = id
        self.model = model
        self._started = False
        self._block = -1
        self._open: str | None = None  # "text" or the tool call position as "tool:N"
        self._finish = "stop"
        self._usage: Json | None = None

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message: Json = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [_sse("message_start", {"type": "message_start", "message": message})]

    def _open_block(self, kind: str, block: Json) -> list[bytes]:
        if self._open == kind:
            return []
        out = self._close_block()
        self._block += 1
        self._open = kind
        start = {"type": "content_block_start", "index": self._block, "content_block": block}
        return [*out, _sse("content_block_start", start)]

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [_sse("content_block_stop", {"type": "content_block_stop", "index": self._block})]

    def _delta(self, delta: Json) -> bytes:
        event = {"type": "content_block_delta", "index": self._block, "delta": delta}
        return _sse("content_block_delta", event)

    def feed(self, chunk: Json) -> list[bytes]:
        out = self._start()
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out += self._open_block("text", {"type": "text", "text": ""})
                out.append(self._delta({"type": "text_delta", "text": delta["content"]}))
            for call in delta.get("tool_calls") or ():
                function = call.get("function") or {}
                kind = f"tool:{call.get('index', 0)}"
                if call.get("id"):
                    block = {
                        "type": "tool_use",
                        "id": call["id"],
                        "name": function.get("name"),
                        "input": {},
                    }
                    out += self._open_block(kind, block)
                if function.get("arguments"):
                    out.append(
                        self._delta(
                            {"type": "input_json_delta", "partial_json": function["arguments"]}
                        )
                    )
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def finish(self) -> list[bytes]:
        out = [*self._start(), *self._close_block()]
        usage = _usage(self._usage)
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": STOP_REASON.get(self._finish, "end_turn"),
                "stop_sequence": None,
            },
            "usage": usage,
        }
        out.append(_sse("message_delta", delta))
        out.append(_sse("message_stop", {"type": "message_stop"}))
        return out

    def error(self, message: str) -> bytes:
        return _sse("error", {"type": "error", "error": {"type": "api_error", "message": message}})
