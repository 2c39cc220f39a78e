"""Anthropic Messages: ``POST /v1/messages`` (JSON or SSE) and ``/v1/messages/count_tokens``.

Auth is ``x-api-key`` (or ``Authorization: Bearer``, which the current SDK sends) plus a
required ``anthropic-version`` header. The stream is Anthropic's
named events: message_start, content_block_start, ping, content_block_delta (``text_delta``
or ``input_json_delta``), content_block_stop, message_delta (stop reason, output tokens),
message_stop. Errors are ``{"type": "error", "error": {"type", "message"}, "request_id"}``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.providers import anthropic_request
from infra.fake_upstream.providers.common import (
    before_answer,
    dumps,
    guarded,
    require_key,
    send_json,
    send_stream,
    sse,
)
from infra.fake_upstream.providers.reply import Reply, prompt_tokens, reply
from infra.fake_upstream.settings import known
from infra.fake_upstream.text import pieces
from infra.fake_upstream.upstream import Check, Upstream

VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # 2023-06-01; the SDK sends newer dates
STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool": "tool_use",
}
ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
ARGUMENT_PIECE = 8


def render(exc: ApiError) -> Response:
    kind, default = ERRORS.get(exc.status, ("api_error", f"HTTP {exc.status}"))
    body = {
        "type": "error",
        "error": {"type": exc.kind or kind, "message": exc.message or default},
        "request_id": exc.headers.get("request-id"),
    }
    return Response(dumps(body), exc.status, exc.headers, "application/json")


def _check(upstream: Upstream) -> Check:
    def check(request: Request) -> None:
        bearer = request.headers.get("authorization", "")
        key = request.headers.get("x-api-key") or bearer.removeprefix("Bearer ").strip()
        if not key:
            raise ApiError(401, "x-api-key header is required", kind="authentication_error")
        if not require_key(key, upstream.settings.api_key):
            raise ApiError(401, "invalid x-api-key", kind="authentication_error")
        version = request.headers.get("anthropic-version")
        if version is None:
            raise ApiError(
                400, "anthropic-version: header is required", kind="invalid_request_error"
            )
        if not VERSION.match(version):
            message = f"anthropic-version: invalid version '{version}'"
            raise ApiError(400, message, kind="invalid_request_error")

    return check


async def _parsed(upstream: Upstream, request: Request, count_only: bool) -> tuple[Any, ...]:
    faults, headers, _ = await upstream.admit(request, "anthropic", _check(upstream))
    body = await upstream.parsed(request)
    if body is None:
        message = "There was an error parsing the body of your request."
        raise ApiError(400, message, headers=headers, kind="invalid_request_error")
    try:
        ask, prompt = anthropic_request.parse(
            body, upstream.settings.default_completion_tokens, count_only
        )
        if not known(ask.model, upstream.settings.anthropic_models):
            raise ApiError(404, f"model: {ask.model}", kind="not_found_error")
    except ApiError as exc:
        exc.headers = headers
        raise
    return faults, headers, body, ask, prompt_tokens(ask.model, prompt.texts, prompt.images)


async def count_tokens(upstream: Upstream, request: Request) -> Response:
    _, headers, _, _, tokens = await _parsed(upstream, request, count_only=True)
    upstream.stats.answered(200)
    return Response(dumps({"input_tokens": tokens}), 200, headers, "application/json")


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _content(answer: Reply) -> list[dict[str, Any]]:
    if answer.tool is None:
        return [{"type": "text", "text": answer.text}]
    call = answer.tool
    return [
        {"type": "tool_use", "id": "toolu_" + call.ref, "name": call.name, "input": call.arguments}
    ]


def _message(model: str, answer: Reply | None, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_" + os.urandom(12).hex(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _content(answer) if answer else [],
        "stop_reason": STOP[answer.finish] if answer else None,
        "stop_sequence": answer.stop_sequence if answer else None,
        "usage": usage,
    }


async def messages(upstream: Upstream, request: Request) -> Response:
    faults, headers, body, ask, prompt = await _parsed(upstream, request, count_only=False)
    answer = reply(ask)
    stream = body.get("stream") is True
    await before_answer(upstream, faults, answer.tokens, stream)

    def done() -> None:
        upstream.stats.completed(ask.model, prompt, answer.tokens, "anthropic")

    if stream:
        return send_stream(upstream, faults, _events(ask.model, answer, prompt), headers, done)
    usage = _usage(prompt, answer.tokens)
    return send_json(upstream, faults, dumps(_message(ask.model, answer, usage)), headers, done)


async def _events(model: str, answer: Reply, prompt: int) -> AsyncIterator[bytes]:
    start = _message(model, None, _usage(prompt, 1))
    yield sse("message_start", {"type": "message_start", "message": start})
    block = _content(answer)[0]
    opening = {**block, "text": ""} if answer.tool is None else {**block, "input": {}}
    yield sse(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": opening},
    )
    yield sse("ping", {"type": "ping"})
    for delta in _deltas(model, answer):
        yield sse(
            "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
        )
    yield sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    stop = {"stop_reason": STOP[answer.finish], "stop_sequence": answer.stop_sequence}
    usage = {"output_tokens": answer.tokens}
    yield sse("message_delta", {"type": "message_delta", "delta": stop, "usage": usage})
    yield sse("message_stop", {"type": "message_stop"})


def _deltas(model: str, answer: Reply) -> list[dict[str, Any]]:
    if answer.tool is None:
        return [{"type": "text_delta", "text": piece} for piece in pieces(model, answer.text)]
    text = answer.tool.text
    parts = [""] + [text[i : i + ARGUMENT_PIECE] for i in range(0, len(text), ARGUMENT_PIECE)]
    return [{"type": "input_json_delta", "partial_json": part} for part in parts]


def routes(upstream: Upstream) -> list[Route]:
    return [
        Route("/v1/messages", guarded(upstream, messages, render), methods=["POST"]),
        Route(
            "/v1/messages/count_tokens", guarded(upstream, count_tokens, render), methods=["POST"]
        ),
    ]
