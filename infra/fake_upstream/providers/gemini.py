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

from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.providers import gemini_access, gemini_embed
from infra.fake_upstream.providers import gemini_request as req
from infra.fake_upstream.providers.common import (
    Endpoint,
    before_answer,
    dumps,
    guarded,
    send_json,
    send_stream,
    sse,
)
from infra.fake_upstream.providers.reply import Reply, prompt_tokens, reply
from infra.fake_upstream.text import pieces
from infra.fake_upstream.upstream import Upstream

FINISH = {"stop": "STOP", "stop_sequence": "STOP", "tool": "STOP", "length": "MAX_TOKENS"}
TOKENS_PER_CHUNK = 4


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
    faults, headers, body, model = await gemini_access.admitted(
        upstream, request, "generateContent"
    )
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


def routes(upstream: Upstream) -> list[Route]:
    endpoint = _dispatch(
        guarded(upstream, generate, gemini_access.render),
        guarded(upstream, gemini_embed.embed, gemini_access.render),
        guarded(upstream, gemini_embed.count_tokens, gemini_access.render),
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
        return gemini_access.render(error)

    return endpoint
