"""Builders and readers for the canonical (OpenAI-shaped) objects every adapter speaks.

Adapters for non-OpenAI vendors build their answers with these, so every vendor's
completion, chunk and usage looks the same to the gateway and to clients.
"""

from __future__ import annotations

import re
import time
from typing import Any

from ingress.providers.base import Json
from schemas.tokens import content_text

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[^,]*)?;base64,(?P<data>.*)$", re.S)


def usage(
    prompt: int,
    completion: int,
    cached: int = 0,
    reasoning: int = 0,
    *,
    audio_prompt: int = 0,
    image_prompt: int = 0,
    audio_completion: int = 0,
) -> Json:
    """OpenAI's usage object; the details are parts of the prompt and completion counts."""
    out: Json = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    prompt_details = {
        k: v
        for k, v in (
            ("cached_tokens", cached),
            ("audio_tokens", audio_prompt),
            ("image_tokens", image_prompt),
        )
        if v
    }
    completion_details = {
        k: v for k, v in (("reasoning_tokens", reasoning), ("audio_tokens", audio_completion)) if v
    }
    if prompt_details:
        out["prompt_tokens_details"] = prompt_details
    if completion_details:
        out["completion_tokens_details"] = completion_details
    return out


def message(content: str | None, tool_calls: list[Json] | None = None) -> Json:
    out: Json = {"role": "assistant", "content": content}
    if tool_calls:
        out["tool_calls"] = tool_calls
    return out


def completion(
    id: str, model: str, choices: list[Json], use: Json | None, created: int | None = None
) -> Json:
    out: Json = {
        "id": id,
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": model,
        "choices": choices,
    }
    if use is not None:
        out["usage"] = use
    return out


def choice(index: int, msg: Json, finish_reason: str | None) -> Json:
    return {"index": index, "message": msg, "finish_reason": finish_reason, "logprobs": None}


def tool_call(id: str, name: str, arguments: str) -> Json:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


class ChunkMaker:
    """``chat.completion.chunk`` dicts sharing one id, model and creation time."""

    def __init__(self, id: str, model: str) -> None:
        self.id = id
        self.model = model
        self.created = int(time.time())

    def chunk(self, delta: Json, index: int = 0, finish_reason: str | None = None) -> Json:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
        }

    def text(self, text: str, index: int = 0) -> Json:
        return self.chunk({"content": text}, index)

    def role(self, index: int = 0) -> Json:
        return self.chunk({"role": "assistant", "content": ""}, index)

    def tool_start(self, position: int, id: str, name: str, index: int = 0) -> Json:
        call = {
            "index": position,
            "id": id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        return self.chunk({"tool_calls": [call]}, index)

    def tool_arguments(self, position: int, fragment: str, index: int = 0) -> Json:
        call = {"index": position, "function": {"arguments": fragment}}
        return self.chunk({"tool_calls": [call]}, index)

    def finish(self, reason: str, index: int = 0) -> Json:
        return self.chunk({}, index, reason)

    def usage(self, use: Json) -> Json:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": use,
        }


def text_of(content: Any) -> str:
    """A message's text: the string, or its text parts joined."""
    return content_text(content) if isinstance(content, str | list) else ""


def data_url(url: str) -> tuple[str, str] | None:
    """(mime type, base64 data) of a ``data:`` URL, or None for other URLs."""
    match = _DATA_URL.match(url)
    if match is None:
        return None
    return match.group("mime") or "application/octet-stream", match.group("data")


def copy_params(body: Json, out: Json, names: tuple[tuple[str, str], ...]) -> None:
    """Copy the parameters the caller set, renamed: (OpenAI name, vendor name) pairs."""
    for ours, theirs in names:
        if body.get(ours) is not None:
            out[theirs] = body[ours]


def stops(stop: Any) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else [str(s) for s in stop]


def max_output_tokens(body: Json) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    return value if isinstance(value, int) else None


def function_tools(body: Json) -> list[Json]:
    """The ``function`` objects of the request's tools (name, description, parameters)."""
    return [
        tool["function"]
        for tool in body.get("tools") or ()
        if isinstance(tool, dict) and tool.get("type") == "function" and "function" in tool
    ]
