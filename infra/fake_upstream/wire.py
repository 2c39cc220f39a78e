"""OpenAI's wire objects as plain dicts (serialised with orjson): completions, chunks, errors.

Field names, order and null-vs-absent follow what api.openai.com sends, so clients and the
gateway's parsers see exactly what a real provider would give them.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

FINGERPRINT = "fp_tollgate_fake"
DONE = b"data: [DONE]\n\n"
Choice = tuple[str, str]  # (content, finish_reason)


def completion_id() -> str:
    return "chatcmpl-" + os.urandom(15).hex()[:29]


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(
    cid: str, model: str, choices: list[Choice], use: dict[str, Any] | None
) -> bytes:
    """A ``chat.completion``; without ``use`` the usage key is absent (x-fake-omit-usage)."""
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish,
            }
            for i, (text, finish) in enumerate(choices)
        ],
    }
    if use is not None:
        body["usage"] = use
    body["service_tier"] = "default"
    body["system_fingerprint"] = FINGERPRINT
    return orjson.dumps(body)


class Chunks:
    """One stream's ``chat.completion.chunk`` events, sharing id, created and model.

    With ``usage_field`` (the request set ``stream_options.include_usage``) every chunk
    carries ``"usage": null`` and the final usage chunk carries the numbers.
    """

    def __init__(self, model: str, usage_field: bool) -> None:
        self.head = {
            "id": completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
        self.usage_field = usage_field

    def event(self, choices: list[dict[str, Any]], use: dict[str, Any] | None = None) -> bytes:
        body: dict[str, Any] = {**self.head, "choices": choices}
        if self.usage_field:
            body["usage"] = use
        return b"data: " + orjson.dumps(body) + b"\n\n"


def role_delta(index: int) -> dict[str, Any]:
    delta = {"role": "assistant", "content": "", "refusal": None}
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}


def content_delta(index: int, content: str) -> dict[str, Any]:
    return {"index": index, "delta": {"content": content}, "logprobs": None, "finish_reason": None}


def finish_delta(index: int, finish: str) -> dict[str, Any]:
    return {"index": index, "delta": {}, "logprobs": None, "finish_reason": finish}


# status → (type, code, message) as api.openai.com sends them when nothing more specific applies.
ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: ("invalid_request_error", None, "Not found."),
    408: ("timeout", None, "Request timed out."),
    409: ("invalid_request_error", None, "Conflict."),
    422: ("invalid_request_error", None, "Unprocessable entity."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again later.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    504: ("server_error", None, "Gateway timeout."),
}


def error(
    status: int, message: str | None = None, param: str | None = None, code: str | None = None
) -> bytes:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    kind, default_code, default_message = ERRORS.get(
        status,
        ("invalid_request_error", None, f"HTTP {status}")
        if status < 500
        else ("server_error", None, f"HTTP {status}"),
    )
    body = {
        "message": message or default_message,
        "type": kind,
        "param": param,
        "code": code or default_code,
    }
    return orjson.dumps({"error": body})


def model_list(models: tuple[str, ...]) -> bytes:
    return orjson.dumps({"object": "list", "data": [model_object(m) for m in models]})


def model_object(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1715367049, "owned_by": "system"}


def embeddings(model: str, vectors: list[Any], prompt_tokens: int) -> bytes:
    """Vectors are float lists, or base64 strings when the request asked for base64."""
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
            ],
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
    )
