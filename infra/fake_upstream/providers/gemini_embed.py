"""Gemini's ``countTokens``, ``embedContent`` and ``batchEmbedContents``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from infra.fake_upstream.embeddings import vector
from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.providers import gemini_request as req
from infra.fake_upstream.providers.common import dumps
from infra.fake_upstream.providers.gemini_access import admitted
from infra.fake_upstream.providers.reply import prompt_tokens
from infra.fake_upstream.upstream import Upstream
from schemas.tokens import count_text

EMBED_DIMENSIONS = 768


async def count_tokens(upstream: Upstream, request: Request) -> Response:
    _, headers, body, model = await admitted(upstream, request, "countTokens")
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
    _, headers, body, model = await admitted(upstream, request, request.path_params["method"])
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
