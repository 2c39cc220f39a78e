"""Mistral (``/mistral/v1/chat/completions``, ``/embeddings``, ``/models``): OpenAI's shapes
with Mistral's differences.

Mistral's request models forbid unknown fields: ``seed`` (it is ``random_seed``),
``stream_options``, ``logprobs``, ``user``, a user message's ``name``… are a 422 in FastAPI's
shape, ``{"detail": [{"type": "extra_forbidden", "loc": ["body", "seed"], "msg", "input"}]}``.
``tool_choice`` forces a call with ``"any"`` (``"required"`` is accepted too), tool call ids
are 9 letters or digits, and a stream's last chunk always carries the usage.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.fake_upstream import embeddings
from infra.fake_upstream.chat import respond
from infra.fake_upstream.chat_request import Flavor
from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.providers.common import dumps, guarded, require_key
from infra.fake_upstream.settings import known
from infra.fake_upstream.upstream import Check, Upstream

MISTRAL = Flavor(provider="mistral", forced_tool="any", seed_field="random_seed", lean=True)
CHAT_FIELDS = frozenset(
    (
        "model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop",
        "random_seed", "response_format", "tools", "tool_choice", "presence_penalty",
        "frequency_penalty", "n", "safe_prompt", "prediction", "parallel_tool_calls",
        "prompt_mode", "metadata",
    )
)  # fmt: skip
EMBED_FIELDS = frozenset(("model", "input", "output_dimension", "output_dtype", "encoding_format"))
MESSAGE_FIELDS = {
    "system": {"role", "content"},
    "user": {"role", "content"},
    "assistant": {"role", "content", "tool_calls", "prefix"},
    "tool": {"role", "content", "tool_call_id", "name"},
}
CALL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")
MODELS = ("mistral-large-latest", "mistral-medium-latest", "mistral-small-latest", "mistral-embed")
DEFAULTS = {
    401: "Unauthorized",
    404: "Not Found",
    429: "Requests rate limit exceeded",
    500: "Internal server error",
    503: "Service unavailable",
}


def render(exc: ApiError) -> Response:
    if exc.kind == "validation":
        body: dict[str, Any] = {"detail": exc.detail}
    else:
        body = {
            "object": "error",
            "message": exc.message or DEFAULTS.get(exc.status, f"HTTP {exc.status}"),
            "type": exc.code or ("invalid_request_error" if exc.status < 500 else "api_error"),
            "param": None,
            "code": str(exc.status),
        }
    return Response(dumps(body), exc.status, exc.headers, "application/json")


def _forbidden(loc: list[Any], value: Any) -> dict[str, Any]:
    return {
        "type": "extra_forbidden",
        "loc": loc,
        "msg": "Extra inputs are not permitted",
        "input": value,
    }


def _problems(body: dict[str, Any], fields: frozenset[str]) -> list[dict[str, Any]]:
    problems = [_forbidden(["body", k], v) for k, v in body.items() if k not in fields]
    for i, message in enumerate(body.get("messages") or []):
        role = message.get("role") if isinstance(message, dict) else None
        allowed = MESSAGE_FIELDS.get(role) if isinstance(role, str) else None
        extra = [k for k in message if k not in allowed] if allowed else []
        problems += [_forbidden(["body", "messages", i, role, k], message[k]) for k in extra]
        if role == "tool" and not CALL_ID.match(str(message.get("tool_call_id", ""))):
            loc = ["body", "messages", i, "tool_call_id"]
            message_text = "Value error, Tool call id has to be 9 alphanumeric characters"
            given = message.get("tool_call_id")
            problems.append(
                {"type": "value_error", "loc": loc, "msg": message_text, "input": given}
            )
    return problems


def _check(upstream: Upstream) -> Check:
    def check(request: Request) -> None:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not require_key(bearer, upstream.settings.api_key):
            raise ApiError(401, "Unauthorized")

    return check


async def _admitted(
    upstream: Upstream, request: Request, fields: frozenset[str]
) -> tuple[Any, ...]:
    faults, headers, started = await upstream.admit(request, "mistral", _check(upstream))
    body = await upstream.parsed(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid JSON body", headers=headers)
    problems = _problems(body, fields)
    if problems:
        raise ApiError(422, headers=headers, kind="validation", detail=problems)
    model = body.get("model")
    if not isinstance(model, str) or not known(model, upstream.settings.mistral_models):
        raise ApiError(400, f"Invalid model: {model}", headers=headers, code="invalid_model")
    return faults, headers, started, body, model


async def chat(upstream: Upstream, request: Request) -> Response:
    faults, headers, started, body, model = await _admitted(upstream, request, CHAT_FIELDS)
    if body.get("tool_choice") == "required":
        body = {**body, "tool_choice": "any"}
    return await respond(
        upstream,
        faults,
        headers=headers,
        started=started,
        body=body,
        model=model,
        flavor=MISTRAL,
    )


async def embed(upstream: Upstream, request: Request) -> Response:
    _, headers, _, body, model = await _admitted(upstream, request, EMBED_FIELDS)
    return embeddings.respond(upstream, headers, body, model, "mistral")


async def models(upstream: Upstream, request: Request) -> Response:
    _check(upstream)(request)
    data = [
        {"id": m, "object": "model", "created": 1715367049, "owned_by": "mistralai"} for m in MODELS
    ]
    return Response(dumps({"object": "list", "data": data}), media_type="application/json")


def routes(upstream: Upstream) -> list[Route]:
    base = "/mistral/v1"
    return [
        Route(f"{base}/chat/completions", guarded(upstream, chat, render), methods=["POST"]),
        Route(f"{base}/embeddings", guarded(upstream, embed, render), methods=["POST"]),
        Route(f"{base}/models", guarded(upstream, models, render), methods=["GET"]),
    ]
