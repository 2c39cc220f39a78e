"""AWS Bedrock Runtime ``Converse`` at ``/model/{modelId}/converse`` and ``/converse-stream``.

Every request must be SigV4-signed for service ``bedrock`` with the fake's AWS settings
(``sigv4``), or carry ``Authorization: Bearer`` with a Bedrock API key. The stream is AWS
event-stream framing (``eventstream``): messageStart, contentBlockStart (tool use),
contentBlockDelta, contentBlockStop, messageStop, metadata. Errors are ``{"message"}`` with
the error's name in ``x-amzn-ErrorType``; AWS sends no Retry-After on a throttle.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.providers import bedrock_request, eventstream, sigv4
from infra.fake_upstream.providers.common import (
    before_answer,
    dumps,
    guarded,
    require_key,
    send_json,
    send_stream,
)
from infra.fake_upstream.providers.reply import Reply, prompt_tokens, reply
from infra.fake_upstream.settings import known
from infra.fake_upstream.text import pieces
from infra.fake_upstream.upstream import Check, Upstream

ERRORS = {
    400: ("ValidationException", "Malformed input request, please reformat your input."),
    403: (
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID.",
    ),
    404: (
        "ResourceNotFoundException",
        "Could not resolve the foundation model from the model identifier.",
    ),
    408: ("ModelTimeoutException", "Model has timed out in processing the request."),
    424: ("ModelErrorException", "The model returned an error."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
    503: ("ServiceUnavailableException", "The service is unavailable. Please try again later."),
}
STOP = {"stop": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence",
        "tool": "tool_use"}  # fmt: skip
CODERS = "http://internal.amazon.com/coral/com.amazon.bedrock/"
ARGUMENT_PIECE = 8
MEDIA = "application/vnd.amazon.eventstream"


def render(exc: ApiError) -> Response:
    kind, default = ERRORS.get(exc.status, ("InternalServerException", f"HTTP {exc.status}"))
    headers = {k: v for k, v in exc.headers.items() if k != "retry-after"}
    headers["x-amzn-ErrorType"] = f"{exc.kind or kind}:{CODERS}"
    body = dumps({"message": exc.message or default})
    return Response(body, exc.status, headers, "application/json")


def _check(upstream: Upstream, body: bytes) -> Check:
    """SigV4 (or a Bedrock API key), checked before anything else, as AWS does."""

    def check(request: Request) -> None:
        headers = dict(request.headers)
        bearer = headers.get("authorization", "")
        if bearer.startswith("Bearer "):
            if not require_key(bearer.removeprefix("Bearer ").strip(), upstream.settings.api_key):
                message = "Invalid API Key format: Must start with pre-defined prefix"
                raise ApiError(403, message, kind="AccessDeniedException")
            return
        settings = upstream.settings
        try:
            sigv4.verify(
                request.method,
                request.scope["raw_path"].decode("latin-1"),
                request.scope["query_string"].decode("latin-1"),
                headers,
                body,
                (settings.aws_access_key_id, settings.aws_secret_access_key, settings.aws_region),
            )
        except sigv4.SignatureError as exc:
            raise ApiError(403, exc.message, kind=exc.error_type) from None

    return check


async def converse(upstream: Upstream, request: Request) -> Response:
    model = unquote(request.path_params["model"])
    stream = request.url.path.endswith("/converse-stream")
    check = _check(upstream, await request.body())
    faults, headers, started = await upstream.admit(request, "bedrock", check, model)
    try:
        if not known(model, upstream.settings.bedrock_models):
            raise ApiError(400, "The provided model identifier is invalid.")
        body = await upstream.parsed(request)
        ask, prompt = bedrock_request.parse(
            body, model, upstream.settings.default_completion_tokens
        )
    except ApiError as exc:
        exc.headers = headers | exc.headers
        raise
    answer = reply(ask)
    tokens = prompt_tokens(model, prompt.texts, prompt.images)
    await before_answer(upstream, faults, answer.tokens, stream)
    usage = {"inputTokens": tokens, "outputTokens": answer.tokens,
             "totalTokens": tokens + answer.tokens, "cacheReadInputTokens": 0,
             "cacheWriteInputTokens": 0}  # fmt: skip
    metrics = {"latencyMs": round((time.perf_counter() - started) * 1000)}

    def done() -> None:
        upstream.stats.completed(model, tokens, answer.tokens, "bedrock")

    if stream:
        events = _events(model, answer, usage, metrics)
        return send_stream(upstream, faults, events, headers, done, media_type=MEDIA)
    out = {
        "output": {"message": {"role": "assistant", "content": [_block(answer)]}},
        "stopReason": STOP[answer.finish],
        "usage": usage,
        "metrics": metrics,
    }
    return send_json(upstream, faults, dumps(out), headers, done)


def _block(answer: Reply) -> dict[str, Any]:
    if answer.tool is None:
        return {"text": answer.text}
    call = answer.tool
    return {
        "toolUse": {"toolUseId": "tooluse_" + call.ref, "name": call.name, "input": call.arguments}
    }


async def _events(
    model: str, answer: Reply, usage: dict[str, Any], metrics: dict[str, Any]
) -> AsyncIterator[bytes]:
    yield eventstream.event("messageStart", {"role": "assistant"})
    if answer.tool is not None:
        call = answer.tool
        start: dict[str, Any] = {"toolUse": {"toolUseId": "tooluse_" + call.ref, "name": call.name}}
        yield eventstream.event("contentBlockStart", {"start": start, "contentBlockIndex": 0})
        text = call.text
        for i in range(0, len(text), ARGUMENT_PIECE):
            delta = {"toolUse": {"input": text[i : i + ARGUMENT_PIECE]}}
            yield eventstream.event("contentBlockDelta", {"delta": delta, "contentBlockIndex": 0})
    else:
        for piece in pieces(model, answer.text):
            text_delta = {"delta": {"text": piece}, "contentBlockIndex": 0}
            yield eventstream.event("contentBlockDelta", text_delta)
    yield eventstream.event("contentBlockStop", {"contentBlockIndex": 0})
    yield eventstream.event("messageStop", {"stopReason": STOP[answer.finish]})
    yield eventstream.event("metadata", {"usage": usage, "metrics": metrics})


def routes(upstream: Upstream) -> list[Route]:
    endpoint = guarded(upstream, converse, render)
    return [
        Route("/model/{model:path}/converse", endpoint, methods=["POST"]),
        Route("/model/{model:path}/converse-stream", endpoint, methods=["POST"]),
    ]
