"""Google Gemini (Generative Language API v1beta) at ``/v1beta/models/{model}:{method}``.

Methods: ``generateContent``, ``streamGenerateContent`` (``?alt=sse``: ``data: {...}\\r\\n\\r\\n``
events; without it a streamed JSON array, as Google sends), ``countTokens``, ``embedContent``
and ``batchEmbedContents``. The key comes in ``x-goog-api-key`` or ``?key=``. Errors are
``{"error": {"code", "message", "status"}}``; a 429 says when to retry in a ``RetryInfo``
detail (``retryDelay``), not in a Retry-After header.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.fake_upstream.embeddings import vector
from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.providers import gemini_request as req
from infra.fake_upstream.providers.common import (
    Endpoint,
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

STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
DEFAULTS = {
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}
FINISH = {"stop": "STOP", "stop_sequence": "STOP", "tool": "STOP", "length": "MAX_TOKENS"}
UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
BAD_KEY_INFO = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "API_KEY_INVALID",
    "domain": "googleapis.com",
    "metadata": {"service": "generativelanguage.googleapis.com"},
}
TOKENS_PER_CHUNK = 4
EMBED_DIMENSIONS = 768


def render(exc: ApiError) -> Response:
    error: dict[str, Any] = {
        "code": exc.status,
        "message": exc.message or DEFAULTS.get(exc.status, f"HTTP {exc.status}"),
        "status": exc.kind if exc.kind in STATUS.values() else STATUS.get(exc.status, "UNKNOWN"),
    }
    headers = dict(exc.headers)
    retry = headers.pop("retry-after", None)
    if exc.status == 429 and retry is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry}s"}
        ]
    if exc.detail is not None:
        error["details"] = exc.detail
    return Response(dumps({"error": error}), exc.status, headers, "application/json")


def _check(upstream: Upstream) -> Check:
    def check(request: Request) -> None:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            raise ApiError(403, UNREGISTERED, kind="PERMISSION_DENIED")
        if not require_key(key, upstream.settings.api_key):
            message = "API key not valid. Please pass a valid API key."
            raise ApiError(400, message, kind="INVALID_ARGUMENT", detail=[BAD_KEY_INFO])

    return check


async def _admitted(upstream: Upstream, request: Request, method: str) -> tuple[Any, ...]:
    model = request.path_params["model"]
    faults, headers, _ = await upstream.admit(request, "gemini", _check(upstream), model)
    if not known(model, upstream.settings.gemini_models):
        message = (
            f"models/{model} is not found for API version v1beta, or is not supported for "
            f"{method}. Call ListModels to see the list of available models and their "
            "supported methods."
        )
        raise ApiError(404, message, headers=headers)
    return faults, headers, await upstream.parsed(request), model


def _candidate(answer: Reply, index: int, parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "content": {"parts": parts, "role": "model"},
        "finishReason": FINISH[answer.finish],
        "index": index,
    }


def _parts(answer: Reply) -> list[dict[str, Any]]:
    if answer.tool is not None:
        return [{"functionCall": {"name": answer.tool.name, "args": answer.tool.arguments}}]
    return [{"text": answer.text}]


def _usage(prompt: int, output: int) -> dict[str, Any]:
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }


async def generate(upstream: Upstream, request: Request) -> Response:
    stream = request.path_params["method"] == "streamGenerateContent"
    faults, headers, body, model = await _admitted(upstream, request, "generateContent")
    try:
        ask, prompt, count = req.parse(body, model, upstream.settings.default_completion_tokens)
    except ApiError as exc:
        exc.headers = headers
        raise
    answers = [reply(dataclasses.replace(ask, index=i)) for i in range(count)]
    tokens = prompt_tokens(model, prompt.texts, prompt.images)
    output = sum(a.tokens for a in answers)
    await before_answer(upstream, faults, max(a.tokens for a in answers), stream)

    def done() -> None:
        upstream.stats.completed(model, tokens, output, "gemini")

    rid = os.urandom(11).hex()
    if stream:
        sse_mode = request.query_params.get("alt") == "sse"
        events = _events(model, answers[0], tokens, rid, sse_mode)
        kind = "text/event-stream" if sse_mode else "application/json"
        return send_stream(upstream, faults, events, headers, done, media_type=kind)
    body_out = {
        "candidates": [_candidate(a, i, _parts(a)) for i, a in enumerate(answers)],
        "usageMetadata": _usage(tokens, output),
        "modelVersion": model,
        "responseId": rid,
    }
    return send_json(upstream, faults, dumps(body_out), headers, done)


async def _events(
    model: str, answer: Reply, prompt: int, rid: str, sse_mode: bool
) -> AsyncIterator[bytes]:
    """Chunks of a few tokens; the last has the finish reason and the full usage."""
    if answer.tool is not None:
        chunks = [_parts(answer)]
    else:
        tokens = pieces(model, answer.text) or [""]
        chunks = [
            [{"text": "".join(tokens[i : i + TOKENS_PER_CHUNK])}]
            for i in range(0, len(tokens), TOKENS_PER_CHUNK)
        ]
    for n, parts in enumerate(chunks):
        last = n == len(chunks) - 1
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if last:
            candidate["finishReason"] = FINISH[answer.finish]
        used = (
            _usage(prompt, answer.tokens)
            if last
            else {"promptTokenCount": prompt, "totalTokenCount": prompt}
        )
        chunk = {
            "candidates": [candidate],
            "usageMetadata": used,
            "modelVersion": model,
            "responseId": rid,
        }
        if sse_mode:
            yield sse(None, chunk, crlf=True)
        else:
            yield (b"[" if n == 0 else b",\r\n") + dumps(chunk) + (b"]" if last else b"")


async def count_tokens(upstream: Upstream, request: Request) -> Response:
    _, headers, body, model = await _admitted(upstream, request, "countTokens")
    inner = body.get("generateContentRequest") if isinstance(body, dict) else None
    try:
        _, prompt, _ = req.parse(inner or body, model, upstream.settings.default_completion_tokens)
    except ApiError as exc:
        exc.headers = headers
        raise
    tokens = prompt_tokens(model, prompt.texts, prompt.images)
    upstream.stats.answered(200)
    out = {
        "totalTokens": tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
    }
    return Response(dumps(out), 200, headers, "application/json")


def _embed_one(request: Any, model: str, where: str) -> tuple[list[float], int]:
    content = request.get("content") if isinstance(request, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise req.invalid(f"* {where}.content: content is not specified")
    text = " ".join(p.get("text", "") for p in parts if isinstance(p, dict))
    dims = request.get("outputDimensionality") or EMBED_DIMENSIONS
    return vector(text, dims), count_text(text, model)


async def embed(upstream: Upstream, request: Request) -> Response:
    batch = request.path_params["method"] == "batchEmbedContents"
    _, headers, body, model = await _admitted(upstream, request, request.path_params["method"])
    try:
        if batch:
            requests = body.get("requests") if isinstance(body, dict) else None
            if not isinstance(requests, list) or not requests:
                raise req.invalid("* BatchEmbedContentsRequest.requests: requests is empty")
            for i, one in enumerate(requests):
                if one.get("model") != f"models/{model}":
                    raise req.invalid(
                        f"* BatchEmbedContentsRequest.requests[{i}].model: "
                        f"model must be models/{model}"
                    )
            done = [
                _embed_one(r, model, f"BatchEmbedContentsRequest.requests[{i}]")
                for i, r in enumerate(requests)
            ]
        else:
            done = [_embed_one(body, model, "EmbedContentRequest")]
    except ApiError as exc:
        exc.headers = headers
        raise
    upstream.stats.answered(200)
    upstream.stats.embedded(model, sum(t for _, t in done), "gemini")
    out: Any = (
        {"embeddings": [{"values": v} for v, _ in done]}
        if batch
        else {"embedding": {"values": done[0][0]}}
    )
    return Response(dumps(out), 200, headers, "application/json")


def routes(upstream: Upstream) -> list[Route]:
    endpoint = _dispatch(
        guarded(upstream, generate, render),
        guarded(upstream, embed, render),
        guarded(upstream, count_tokens, render),
    )
    return [Route("/v1beta/models/{model}:{method}", endpoint, methods=["POST"])]


def _dispatch(generating: Endpoint, embedding: Endpoint, counting: Endpoint) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        method = request.path_params["method"]
        if method in ("generateContent", "streamGenerateContent"):
            return await generating(request)
        if method in ("embedContent", "batchEmbedContents"):
            return await embedding(request)
        if method == "countTokens":
            return await counting(request)
        error = ApiError(404, f"Method not found: {method}", kind="NOT_FOUND")
        return render(error)

    return endpoint
