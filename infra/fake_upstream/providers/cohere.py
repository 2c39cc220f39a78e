"""Cohere v2: ``POST /v2/chat`` (JSON or SSE) and ``POST /v2/embed``, with Bearer auth.

The stream is SSE with ``event:`` names matching each payload's ``type``: message-start,
content-start, content-delta, content-end (text), or tool-plan-delta, tool-call-start,
tool-call-delta, tool-call-end (tools), then message-end with the finish reason and usage.
Errors are ``{"id", "message"}``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.fake_upstream.embeddings import vector
from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.providers import cohere_request
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
from schemas.tokens import count_text

FINISH = {
    "stop": "COMPLETE",
    "length": "MAX_TOKENS",
    "stop_sequence": "STOP_SEQUENCE",
    "tool": "TOOL_CALL",
}
DEFAULTS = {
    400: "invalid request",
    401: "invalid api token",
    404: "not found",
    429: "You are past the per minute request limit, please wait and try again later.",
    500: "internal server error, this has been reported to our developers",
    503: "service unavailable",
}
INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")
EMBED_DIMENSIONS = 1024
ARGUMENT_PIECE = 8


def render(exc: ApiError) -> Response:
    body = {"id": str(uuid.uuid4()), "message": exc.message or DEFAULTS.get(exc.status, "error")}
    return Response(dumps(body), exc.status, exc.headers, "application/json")


def _check(upstream: Upstream) -> Check:
    def check(request: Request) -> None:
        given = request.headers.get("authorization", "")
        if not given:
            raise ApiError(401, "no api key supplied")
        if not require_key(given.removeprefix("Bearer ").strip(), upstream.settings.api_key):
            raise ApiError(401, "invalid api token")

    return check


async def _admitted(upstream: Upstream, request: Request) -> tuple[Any, ...]:
    faults, headers, _ = await upstream.admit(request, "cohere", _check(upstream))
    body = await upstream.parsed(request)
    model = body.get("model") if isinstance(body, dict) else None
    if isinstance(model, str) and not known(model, upstream.settings.cohere_models):
        message = (
            f"model '{model}' not found, make sure the correct model ID was used and that you "
            "have access to the model."
        )
        raise ApiError(404, message, headers=headers)
    return faults, headers, body


def _plan(answer: Reply) -> str:
    return f"I will call {answer.tool.name}." if answer.tool else ""


def _usage(prompt: int, output: int) -> dict[str, Any]:
    counts = {"input_tokens": prompt, "output_tokens": output}
    return {"billed_units": counts, "tokens": dict(counts)}


def _tool_call(answer: Reply, arguments: str) -> dict[str, Any]:
    call = answer.tool
    assert call is not None
    return {
        "id": f"{call.name}_{call.ref[:12]}",
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


async def chat(upstream: Upstream, request: Request) -> Response:
    faults, headers, body = await _admitted(upstream, request)
    try:
        ask, prompt = cohere_request.parse(body, upstream.settings.default_completion_tokens)
    except ApiError as exc:
        exc.headers = headers
        raise
    answer = reply(ask)
    tokens = prompt_tokens(ask.model, prompt.texts, prompt.images)
    output = answer.tokens + count_text(_plan(answer), ask.model)
    stream = body.get("stream") is True
    await before_answer(upstream, faults, output, stream)

    def done() -> None:
        upstream.stats.completed(ask.model, tokens, output, "cohere")

    rid = str(uuid.uuid4())
    usage = _usage(tokens, output)
    if stream:
        events = _events(rid, ask.model, answer, usage)
        return send_stream(upstream, faults, events, headers, done)
    message: dict[str, Any] = {"role": "assistant"}
    if answer.tool is not None:
        message |= {
            "tool_plan": _plan(answer),
            "tool_calls": [_tool_call(answer, answer.tool.text)],
        }
    else:
        message["content"] = [{"type": "text", "text": answer.text}]
    out = {"id": rid, "message": message, "finish_reason": FINISH[answer.finish], "usage": usage}
    return send_json(upstream, faults, dumps(out), headers, done)


def _event(kind: str, **fields: Any) -> bytes:
    return sse(kind, {"type": kind, **fields})


async def _events(
    rid: str, model: str, answer: Reply, usage: dict[str, Any]
) -> AsyncIterator[bytes]:
    start = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    yield _event("message-start", id=rid, delta={"message": start})
    if answer.tool is None:
        opening = {"message": {"content": {"type": "text", "text": ""}}}
        yield _event("content-start", index=0, delta=opening)
        for piece in pieces(model, answer.text):
            yield _event("content-delta", index=0, delta={"message": {"content": {"text": piece}}})
        yield _event("content-end", index=0)
    else:
        for piece in pieces(model, _plan(answer)):
            yield _event("tool-plan-delta", delta={"message": {"tool_plan": piece}})
        opening = {"message": {"tool_calls": _tool_call(answer, "")}}
        yield _event("tool-call-start", index=0, delta=opening)
        text = answer.tool.text
        for i in range(0, len(text), ARGUMENT_PIECE):
            fragment = {"function": {"arguments": text[i : i + ARGUMENT_PIECE]}}
            yield _event("tool-call-delta", index=0, delta={"message": {"tool_calls": fragment}})
        yield _event("tool-call-end", index=0)
    end = {"finish_reason": FINISH[answer.finish], "usage": usage}
    yield _event("message-end", delta=end)


async def embed(upstream: Upstream, request: Request) -> Response:
    _, headers, body = await _admitted(upstream, request)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid request: the body must be a JSON object.", headers=headers)
    texts = body.get("texts")
    kinds = body.get("embedding_types") or ["float"]
    problem = None
    if not isinstance(body.get("model"), str):
        problem = "invalid request: model must be specified."
    elif not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        problem = "invalid request: texts must be a non-empty list of strings."
    elif body.get("input_type") not in INPUT_TYPES:
        problem = f"invalid request: input_type must be one of {', '.join(INPUT_TYPES)}."
    elif not set(kinds) <= {"float", "int8"}:
        problem = "invalid request: the fake serves embedding_types float and int8."
    if problem is not None:
        raise ApiError(400, problem, headers=headers)
    model: str = body["model"]
    given: list[str] = body["texts"]
    dims = body.get("output_dimension") or EMBED_DIMENSIONS
    floats = [vector(t, dims) for t in given]
    embeddings: dict[str, Any] = {"float": floats}
    if "int8" in kinds:
        embeddings["int8"] = [[round(v * 127) for v in vec] for vec in floats]
    tokens = sum(count_text(t, model) for t in given)
    upstream.stats.answered(200)
    upstream.stats.embedded(model, tokens, "cohere")
    out = {
        "id": str(uuid.uuid4()),
        "embeddings": {k: embeddings[k] for k in kinds},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
    }
    return Response(dumps(out), 200, headers, "application/json")


def routes(upstream: Upstream) -> list[Route]:
    return [
        Route("/v2/chat", guarded(upstream, chat, render), methods=["POST"]),
        Route("/v2/embed", guarded(upstream, embed, render), methods=["POST"]),
    ]
