"""Anthropic's Messages API (``POST /v1/messages``), both ways.

System prompts move to ``system``; tool results become ``tool_result`` blocks in a user turn;
consecutive turns of one role merge (the API wants alternation); ``max_tokens`` is required,
so a default applies. ``response_format`` with a JSON schema is served the way Anthropic
recommends: one forced tool whose input schema is the schema, read back as the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ingress.providers import canonical
from ingress.providers.base import (
    Failure,
    Json,
    UnsupportedError,
    UpstreamCall,
    retry_after,
    settings_secret,
)
from ingress.providers.sse import SseParser
from schemas.routing_config import ProviderSettings

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
JSON_TOOL = "json_answer"
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicAdapter:
    kind = "anthropic"

    def __init__(self, settings: ProviderSettings) -> None:
        self.base = settings.endpoint()
        self.headers = {
            "content-type": "application/json",
            "anthropic-version": settings.api_version or API_VERSION,
            **settings.headers,
        }
        key = settings_secret(settings, "api_key")
        if key:
            self.headers["x-api-key"] = key

    def chat_call(self, body: Json, upstream_model: str, stream: bool) -> UpstreamCall:
        payload = orjson.dumps(to_messages_request(body, upstream_model, stream))
        return UpstreamCall(f"{self.base}/v1/messages", payload, self.headers)

    def chat_result(self, payload: bytes, public_model: str) -> Json:
        message = orjson.loads(payload)
        if not isinstance(message, dict) or message.get("type") != "message":
            raise ValueError("the answer is not a message object")
        texts: list[str] = []
        calls: list[Json] = []
        for block in message.get("content") or ():
            if block.get("type") == "text":
                texts.append(block.get("text", ""))
            elif block.get("type") == "tool_use" and block.get("name") == JSON_TOOL:
                texts.append(orjson.dumps(block.get("input")).decode())
            elif block.get("type") == "tool_use":
                arguments = orjson.dumps(block.get("input") or {}).decode()
                calls.append(canonical.tool_call(block["id"], block["name"], arguments))
        finish = FINISH.get(message.get("stop_reason") or "", "stop")
        if finish == "tool_calls" and not calls:
            finish = "stop"  # the forced JSON tool is an answer, not a call
        msg = canonical.message("".join(texts) if texts or not calls else None, calls)
        return canonical.completion(
            message.get("id", ""),
            public_model,
            [canonical.choice(0, msg, finish)],
            _usage(message.get("usage") or {}),
        )

    def stream_decoder(self, public_model: str) -> AnthropicStream:
        return AnthropicStream(public_model)

    def failure(self, status: int, payload: bytes, headers: Mapping[str, str]) -> Failure:
        message, kind = _error(payload, status)
        return Failure(status, message, kind, retry_after(headers))

    def embeddings_call(self, body: Json, upstream_model: str) -> UpstreamCall:
        raise UnsupportedError("Anthropic has no embeddings API; route embeddings elsewhere")

    def embeddings_result(self, payload: bytes, public_model: str, request: Json) -> Json:
        raise UnsupportedError("Anthropic has no embeddings API")

    def health_call(self) -> UpstreamCall | None:
        return UpstreamCall(f"{self.base}/v1/models", b"", self.headers, "GET")


def _usage(usage: Json) -> Json:
    cached = usage.get("cache_read_input_tokens") or 0
    written = usage.get("cache_creation_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + cached + written
    return canonical.usage(prompt, usage.get("output_tokens") or 0, cached)


def _error(payload: bytes, status: int) -> tuple[str, str]:
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload[:300].decode("utf-8", "replace") or f"HTTP {status}", ""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or f"HTTP {status}"), str(error.get("type") or "")
    return f"HTTP {status}", ""


def to_messages_request(body: Json, model: str, stream: bool) -> Json:
    for param in ("logprobs", "top_logprobs"):
        if body.get(param):
            raise UnsupportedError(f"Anthropic models do not return `{param}`")
    if (body.get("n") or 1) > 1:
        raise UnsupportedError("Anthropic models return one choice: set `n` to 1")
    system: list[str] = []
    turns: list[Json] = []
    for msg in body["messages"]:
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(canonical.text_of(msg.get("content")))
        elif role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": msg.get("tool_call_id", ""),
                "content": canonical.text_of(msg.get("content")),
            }
            _append(turns, "user", [block])
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(msg))
        else:
            _append(turns, "user", _user_blocks(msg.get("content")))
    out: Json = {
        "model": model,
        "messages": turns,
        "max_tokens": canonical.max_output_tokens(body) or DEFAULT_MAX_TOKENS,
    }
    if system:
        out["system"] = "\n\n".join(system)
    if stream:
        out["stream"] = True
    canonical.copy_params(body, out, (("temperature", "temperature"), ("top_p", "top_p")))
    if body.get("stop") is not None:
        out["stop_sequences"] = canonical.stops(body["stop"])
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    _tools(body, out)
    return out


def _append(turns: list[Json], role: str, blocks: list[Json]) -> None:
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": list(blocks)})


def _user_blocks(content: Any) -> list[Json]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[Json] = []
    for part in content or ():
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            inline = canonical.data_url(url)
            source = (
                {"type": "base64", "media_type": inline[0], "data": inline[1]}
                if inline
                else {"type": "url", "url": url}
            )
            blocks.append({"type": "image", "source": source})
        else:
            raise UnsupportedError(f"Anthropic models cannot take `{kind}` content parts")
    return blocks


def _assistant_blocks(msg: Json) -> list[Json]:
    text = canonical.text_of(msg.get("content"))
    blocks: list[Json] = [{"type": "text", "text": text}] if text else []
    blocks.extend(tool_use_block(call) for call in msg.get("tool_calls") or ())
    return blocks


def tool_use_block(call: Json) -> Json:
    """An OpenAI tool call as Anthropic's ``tool_use`` block (arguments parsed to JSON)."""
    function = call.get("function") or {}
    try:
        arguments = orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        arguments = {}
    return {
        "type": "tool_use",
        "id": call.get("id"),
        "name": function.get("name"),
        "input": arguments,
    }


def _tools(body: Json, out: Json) -> None:
    tools = canonical.function_tools(body)
    choice = body.get("tool_choice")
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
        tools = [{"name": JSON_TOOL, "description": "Answer with this JSON.", "parameters": schema}]
        choice = {"type": "function", "function": {"name": JSON_TOOL}}
    if not tools or choice == "none":
        return
    out["tools"] = [
        {
            "name": t["name"],
            "description": t.get("description", ""),
            "input_schema": t.get("parameters") or {"type": "object", "properties": {}},
        }
        for t in tools
    ]
    if choice == "required":
        out["tool_choice"] = {"type": "any"}
    elif isinstance(choice, dict):
        out["tool_choice"] = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    if body.get("parallel_tool_calls") is False:
        out.setdefault("tool_choice", {"type": "auto"})["disable_parallel_tool_use"] = True


class AnthropicStream:
    """Messages SSE events → canonical chunks; usage from message_start + message_delta."""

    def __init__(self, model: str) -> None:
        self._sse = SseParser()
        self._chunks = canonical.ChunkMaker("", model)
        self._blocks: dict[int, int] = {}  # content block index → tool call position
        self._json_blocks: set[int] = set()
        self._usage: Json = {}
        self._finish = "stop"
        self.error: Failure | None = None

    def feed(self, data: bytes) -> list[Json]:
        out: list[Json] = []
        for event in self._sse.feed(data):
            out.extend(self._event(event.event, event.data))
        return out

    def close(self) -> list[Json]:
        out: list[Json] = []
        for event in self._sse.close():
            out.extend(self._event(event.event, event.data))
        return out

    def _event(self, name: str, data: str) -> list[Json]:
        if name == "ping":
            return []
        event = orjson.loads(data)
        kind = event.get("type", name)
        make = self._chunks
        if kind == "message_start":
            message = event.get("message") or {}
            make.id = message.get("id", "")
            self._usage.update(message.get("usage") or {})
            return [make.role()]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use" and block.get("name") == JSON_TOOL:
                self._json_blocks.add(event["index"])
            elif block.get("type") == "tool_use":
                position = self._blocks[event["index"]] = len(self._blocks)
                return [make.tool_start(position, block.get("id", ""), block.get("name", ""))]
            return []
        if kind == "content_block_delta":
            return self._delta(event["index"], event.get("delta") or {})
        if kind == "message_delta":
            self._usage.update(event.get("usage") or {})
            reason = (event.get("delta") or {}).get("stop_reason") or "end_turn"
            self._finish = FINISH.get(reason, "stop")
            if self._finish == "tool_calls" and not self._blocks:
                self._finish = "stop"
            return []
        if kind == "message_stop":
            return [make.finish(self._finish), make.usage(_usage(self._usage))]
        if kind == "error":
            error = event.get("error") or {}
            status = 529 if error.get("type") == "overloaded_error" else 500
            self.error = Failure(
                status, error.get("message", "stream error"), error.get("type", "")
            )
        return []

    def _delta(self, index: int, delta: Json) -> list[Json]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunks.text(delta.get("text", ""))]
        if kind == "input_json_delta" and index in self._json_blocks:
            return [self._chunks.text(delta.get("partial_json", ""))]
        if kind == "input_json_delta" and index in self._blocks:
            return [self._chunks.tool_arguments(self._blocks[index], delta.get("partial_json", ""))]
        return []
