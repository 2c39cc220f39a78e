"""OpenAI's wire objects as plain dicts (serialised with orjson): completions, chunks, errors.

Field names, order and null-vs-absent follow what api.openai.com sends, so clients and the
gateway's parsers see exactly what a real provider would give them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import orjson

FINGERPRINT = "fp_tollgate_fake"
DONE = b"data: [DONE]\n\n"


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


@dataclass(frozen=True, slots=True)
class Extras:
    """What Azure adds to OpenAI's bodies, or what Mistral leaves out (``lean``)."""

    prompt_filters: list[dict[str, Any]] | None = None
    lean: bool = False


PLAIN = Extras()
SAFE = {"filtered": False, "severity": "safe"}
CONTENT_FILTERS = {"hate": SAFE, "self_harm": SAFE, "sexual": SAFE, "violence": SAFE}
LEAN_DROPS = ("refusal", "annotations", "logprobs")


def _lean(choice: dict[str, Any]) -> dict[str, Any]:
    message = {k: v for k, v in choice["message"].items() if k not in LEAN_DROPS}
    return {k: v for k, v in choice.items() if k != "logprobs"} | {"message": message}


def chat_completion(
    cid: str,
    model: str,
    choices: list[dict[str, Any]],
    use: dict[str, Any] | None,
    extras: Extras = PLAIN,
) -> bytes:
    """A ``chat.completion``; without ``use`` the usage key is absent (x-fake-omit-usage)."""
    if extras.prompt_filters is not None:
        choices = [c | {"content_filter_results": CONTENT_FILTERS} for c in choices]
    if extras.lean:
        choices = [_lean(c) for c in choices]
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if use is not None:
        body["usage"] = use
    if extras.prompt_filters is not None:
        body["prompt_filter_results"] = extras.prompt_filters
    if not extras.lean:
        body["service_tier"] = "default"
        body["system_fingerprint"] = FINGERPRINT
    return orjson.dumps(body)


class Chunks:
    """One stream's ``chat.completion.chunk`` events, sharing id, created and model.

    With ``usage_field`` (the request set ``stream_options.include_usage``) every chunk
    carries ``"usage": null`` and the final usage chunk carries the numbers. Azure opens with
    a choice-less chunk of ``prompt_filter_results``; Mistral's last chunk has the usage.
    """

    def __init__(self, model: str, usage_field: bool, extras: Extras = PLAIN) -> None:
        self.head: dict[str, Any] = {
            "id": completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        if not extras.lean:
            self.head |= {"service_tier": "default", "system_fingerprint": FINGERPRINT}
        self.usage_field = usage_field
        self.extras = extras

    def prompt_filters(self) -> bytes:
        body = {"choices": [], "created": 0, "id": "", "model": "", "object": ""}
        body["prompt_filter_results"] = self.extras.prompt_filters
        return b"data: " + orjson.dumps(body) + b"\n\n"

    def event(
        self,
        choices: list[dict[str, Any]],
        use: dict[str, Any] | None = None,
        with_usage: bool = False,
    ) -> bytes:
        if self.extras.prompt_filters is not None:
            choices = [_filtered(c) for c in choices]
        if self.extras.lean:
            choices = [{k: v for k, v in c.items() if k != "logprobs"} for c in choices]
            choices = [c | {"delta": _lean_delta(c["delta"])} for c in choices]
        body: dict[str, Any] = {**self.head, "choices": choices}
        if self.usage_field or with_usage:
            body["usage"] = use
        return b"data: " + orjson.dumps(body) + b"\n\n"


def _filtered(choice: dict[str, Any]) -> dict[str, Any]:
    content = choice["delta"].get("content")
    return choice | {"content_filter_results": CONTENT_FILTERS if content else {}}


def _lean_delta(delta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in delta.items() if k != "refusal"}


def role_delta(index: int) -> dict[str, Any]:
    delta = {"role": "assistant", "content": "", "refusal": None}
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}


def content_delta(index: int, content: str, top: int | None = None) -> dict[str, Any]:
    probs = None
    if top is not None:
        from infra.fake_upstream.providers.openai_wire import logprob_entry

        probs = {"content": [logprob_entry(content, top)], "refusal": None}
    return {"index": index, "delta": {"content": content}, "logprobs": probs, "finish_reason": None}


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
