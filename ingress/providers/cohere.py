"""Cohere's v2 API (``POST /v2/chat``, ``POST /v2/embed``), both ways.

The chat request is close to OpenAI's (roles, image parts, function tools, tool messages by
id); the differences are renamed knobs (``p``, ``stop_sequences``), ``tool_choice`` that
only knows REQUIRED and NONE (a named choice becomes REQUIRED over that one tool), and the
assistant's text beside tool calls, which Cohere calls ``tool_plan``: it is the message
content here, both ways, so a conversation round-trips. The stream is SSE with typed
events (message-start, content-*, tool-plan-delta, tool-call-*, message-end).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import Any

import orjson

from ingress.providers import canonical
from ingress.providers.base import (
    Failure,
    Json,
    UnsupportedError,
    UpstreamCall,
    bearer_headers,
    retry_after,
)
from ingress.providers.cohere_answer import FAILED, FINISH, CohereStream, logprobs, usage
from schemas.routing_config import ProviderSettings

UNSUPPORTED = {
    "logit_bias": "Cohere has no logit bias",
    "audio": "Cohere does not answer with audio",
    "prediction": "Cohere has no predicted outputs",
    "web_search_options": "Cohere has no web search tool here",
    "functions": "legacy `functions` are not translated: send `tools`",
    "function_call": "legacy `function_call` is not translated: send `tool_choice`",
}
THINKING_BUDGETS = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
MAX_TEXTS = 96  # per /v2/embed call
DEFAULT_INPUT_TYPE = "search_document"


class CohereAdapter:
    kind = "cohere"

    def __init__(self, settings: ProviderSettings) -> None:
        self.base = settings.endpoint()
        self.headers = bearer_headers(settings)

    def chat_call(self, body: Json, upstream_model: str, stream: bool) -> UpstreamCall:
        payload = orjson.dumps(to_cohere_request(body, upstream_model, stream))
        return UpstreamCall(f"{self.base}/v2/chat", payload, self.headers)

    def chat_result(self, payload: bytes, public_model: str) -> Json:
        answer = orjson.loads(payload)
        if not isinstance(answer, dict) or not isinstance(answer.get("message"), dict):
            raise ValueError("the answer is not a v2 chat response")
        reason = answer.get("finish_reason")
        if reason in FAILED:
            raise ValueError(f"Cohere stopped with {reason}")
        message = answer["message"]
        calls = [
            canonical.tool_call(
                str(call.get("id")),
                str((call.get("function") or {}).get("name") or ""),
                (call.get("function") or {}).get("arguments") or "{}",
            )
            for call in message.get("tool_calls") or ()
        ]
        text = (message.get("tool_plan") or "") + "".join(
            item.get("text", "")
            for item in message.get("content") or ()
            if item.get("type") == "text"  # "thinking" items are the model's reasoning
        )
        msg = canonical.message(text if text or not calls else None, calls)
        choice = canonical.choice(0, msg, FINISH.get(str(reason), "stop"))
        if answer.get("logprobs"):
            choice["logprobs"] = logprobs(answer["logprobs"])
        use = usage(answer.get("usage") or {})
        return canonical.completion(str(answer.get("id") or ""), public_model, [choice], use)

    def stream_decoder(self, public_model: str) -> CohereStream:
        return CohereStream(public_model)

    def failure(self, status: int, payload: bytes, headers: Mapping[str, str]) -> Failure:
        try:
            parsed = orjson.loads(payload)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("message"):
            message = str(parsed["message"])
        else:
            message = payload[:300].decode("utf-8", "replace").strip() or f"HTTP {status}"
        return Failure(status, message, "", retry_after(headers))

    def embeddings_call(self, body: Json, upstream_model: str) -> UpstreamCall:
        given = body.get("input")
        texts = [given] if isinstance(given, str) else given
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise UnsupportedError("Cohere embeds text: send `input` as a string or strings")
        if len(texts) > MAX_TEXTS:
            raise UnsupportedError(f"Cohere embeds at most {MAX_TEXTS} texts per call")
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise UnsupportedError(
                f"`encoding_format: {fmt}` is not supported: use float or base64"
            )
        out: Json = {
            "model": upstream_model,
            "texts": texts,
            # Cohere requires it and OpenAI has none: the caller may pass it, else documents
            "input_type": body.get("input_type") or DEFAULT_INPUT_TYPE,
            "embedding_types": ["float"],
        }
        if body.get("dimensions") is not None:
            out["output_dimension"] = body["dimensions"]  # embed-v4 and later: 256 to 1536
        return UpstreamCall(f"{self.base}/v2/embed", orjson.dumps(out), self.headers)

    def embeddings_result(self, payload: bytes, public_model: str, request: Json) -> Json:
        answer = orjson.loads(payload)
        vectors = (answer.get("embeddings") or {}) if isinstance(answer, dict) else {}
        if not isinstance(vectors, dict) or not isinstance(vectors.get("float"), list):
            raise ValueError("the answer has no float embeddings")
        tokens = int(
            ((answer.get("meta") or {}).get("billed_units") or {}).get("input_tokens") or 0
        )
        as_base64 = request.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": (
                    base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if as_base64 else v
                ),
            }
            for i, v in enumerate(vectors["float"])
        ]
        return {
            "object": "list",
            "data": data,
            "model": public_model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def health_call(self) -> UpstreamCall | None:
        return UpstreamCall(f"{self.base}/v1/models?page_size=1", b"", self.headers, "GET")


# --- request ---------------------------------------------------------------------------


def to_cohere_request(body: Json, model: str, stream: bool) -> Json:
    _refuse(body)
    out: Json = {
        "model": model,
        "messages": [_message(msg) for msg in body["messages"]],
        "stream": stream,
    }
    canonical.copy_params(
        body,
        out,
        (
            ("temperature", "temperature"),
            ("seed", "seed"),
            ("presence_penalty", "presence_penalty"),
            ("frequency_penalty", "frequency_penalty"),
        ),
    )
    if body.get("top_p") is not None:
        out["p"] = min(max(body["top_p"], 0.01), 0.99)  # Cohere's bounds; 1 ≈ 0.99
    budget = canonical.max_output_tokens(body)
    if budget is not None:
        out["max_tokens"] = budget
    if body.get("stop") is not None:
        out["stop_sequences"] = canonical.stops(body["stop"])
    if body.get("logprobs"):
        out["logprobs"] = True
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        out["response_format"] = {
            "type": "json_object",
            **({"json_schema": schema} if schema else {}),
        }
    effort = body.get("reasoning_effort")
    if effort == "none":
        out["thinking"] = {"type": "disabled"}
    elif effort in THINKING_BUDGETS:
        out["thinking"] = {"type": "enabled", "token_budget": THINKING_BUDGETS[effort]}
    elif effort is not None:
        raise UnsupportedError(f"`reasoning_effort: {effort}` has no equivalent on Cohere")
    _tools(body, out)
    return out


def _refuse(body: Json) -> None:
    for name, why in UNSUPPORTED.items():
        if body.get(name) is not None:
            raise UnsupportedError(f"`{name}` is not supported on Cohere: {why}")
    if (body.get("n") or 1) > 1:
        raise UnsupportedError("Cohere returns one choice: set `n` to 1")
    if body.get("top_logprobs"):
        raise UnsupportedError(
            "Cohere returns the chosen tokens' logprobs only: drop `top_logprobs`"
        )
    if body.get("parallel_tool_calls") is False:
        raise UnsupportedError(
            "Cohere cannot be limited to one tool call per turn (`parallel_tool_calls: false`)"
        )
    modalities = body.get("modalities")
    if modalities is not None and list(modalities) != ["text"]:
        raise UnsupportedError('Cohere answers in text only: set `modalities` to ["text"]')
    for name in ("presence_penalty", "frequency_penalty"):
        value = body.get(name)
        if value is not None and not 0 <= value <= 1:
            raise UnsupportedError(f"Cohere takes `{name}` from 0 to 1, not {value}")


def _message(msg: Json) -> Json:
    role = msg.get("role")
    content = msg.get("content")
    if role in ("system", "developer"):
        if isinstance(content, list) and any(p.get("type") != "text" for p in content):
            raise UnsupportedError(f"Cohere takes only text in `{role}` messages")
        return {"role": "system", "content": canonical.text_of(content)}
    if role == "assistant":
        return _assistant(msg)
    if role == "tool":
        text = canonical.text_of(content)
        return {
            "role": "tool",
            "tool_call_id": str(msg.get("tool_call_id") or ""),
            "content": [{"type": "text", "text": text}],
        }
    if role == "function":
        raise UnsupportedError("legacy `function` messages are not translated: use `tool`")
    return {"role": "user", "content": _user_content(content)}


def _user_content(content: Any) -> str | list[Json]:
    if isinstance(content, str):
        return content
    parts: list[Json] = []
    for part in content or ():
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":  # same shape; Cohere takes data: and web URLs alike
            parts.append({"type": "image_url", "image_url": part.get("image_url") or {}})
        else:
            raise UnsupportedError(f"Cohere models cannot take `{kind}` content parts")
    return parts


def _assistant(msg: Json) -> Json:
    out: Json = {"role": "assistant"}
    text = canonical.text_of(msg.get("content"))
    calls = msg.get("tool_calls") or []
    if calls:
        out["tool_calls"] = [
            {
                "id": str(call.get("id") or ""),
                "type": "function",
                "function": {
                    "name": (call.get("function") or {}).get("name", ""),
                    "arguments": (call.get("function") or {}).get("arguments") or "{}",
                },
            }
            for call in calls
        ]
        if text:
            out["tool_plan"] = text
    else:
        out["content"] = text
    return out


def _tools(body: Json, out: Json) -> None:
    tools = canonical.function_tools(body)
    if not tools:
        return
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        tools = [tool for tool in tools if tool["name"] == name]
        if not tools:
            raise UnsupportedError(f"`tool_choice` names `{name}`, which is not among `tools`")
        out["tool_choice"] = "REQUIRED"  # the one tool offered, and a call required
    elif choice == "required":
        out["tool_choice"] = "REQUIRED"
    elif choice == "none":
        out["tool_choice"] = "NONE"
    out["tools"] = [
        {
            "type": "function",
            "function": {
                "name": tool["name"],
                "description": tool.get("description", ""),
                "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
            },
        }
        for tool in tools
    ]
    if any(tool.get("strict") for tool in tools):
        out["strict_tools"] = True
