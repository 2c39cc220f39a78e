"""``POST /v1/chat/completions``, JSON and SSE.

Validate, route, publish ``request.received``, dispatch (retries, breakers, fallbacks),
answer, publish the outcome. A stream is dispatched until its first chunk arrived (so
failures before that are retried or failed over and answered with a proper status); after
that the chunks are relayed as they come, and the stream's end, a provider error mid-stream
or the client leaving all end in one ``response.completed`` with what was generated.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ingress import exchange
from ingress.errors import GatewayError, GuardBlockedError, error_response
from ingress.gateway import Call, Gateway
from ingress.guards import OutputBlocked
from ingress.routing.router import Target
from ingress.stream_outputs import StreamOutputs, outputs_of
from ingress.validation import check_chat_request

ENDPOINT = "/v1/chat/completions"
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def estimate_tokens(raw_size: int, body: dict[str, Any]) -> int:
    """A cheap guess of the tokens a request will use, for the least-tokens strategy."""
    out = body.get("max_completion_tokens") or body.get("max_tokens") or 256
    return raw_size // 4 + (out if isinstance(out, int) else 256)


class ChatService:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def handle(self, request: Request) -> Response:
        call, body = await self.gw.open(request, ENDPOINT)
        streaming = False
        try:
            check_chat_request(body)
            model = body["model"]
            targets = await self.gw.route(call, model, body)
            call.stream = bool(body.get("stream"))
            body = await self.gw.received(call, model, call.stream, body)  # as the guards allow
            tokens = estimate_tokens(call.size, body)
            if call.stream:
                response = await self._stream(call, body, targets, tokens)
                streaming = True
                return response
            return await self._complete(call, body, targets, tokens)
        except GatewayError as exc:
            self.gw.failed(call, exc)
            raise
        finally:
            if not streaming:
                call.done()

    async def _complete(
        self, call: Call, body: dict[str, Any], targets: list[Target], tokens: int
    ) -> Response:
        async def attempt(t: Target) -> dict[str, Any]:
            p = t.deployment.provider
            return await exchange.chat(
                p.adapter, p.transport, body, t.upstream_model, t.public_model
            )

        answer, target, attempts = await call.runtime.dispatcher.run(targets, attempt, tokens)
        answer, blocked = self.gw.checked_answer(call, answer)
        outputs, finish = outputs_of(answer)
        usage = answer.get("usage")
        finish = "content_filter" if blocked else finish
        self.gw.completed(
            call, target, attempts, outputs=outputs, finish_reason=finish, usage=usage
        )
        headers = call.response_headers(target, len(attempts))
        if blocked is not None:
            return error_response(GuardBlockedError(str(blocked), headers=headers))
        return Response(orjson.dumps(answer), 200, headers, "application/json")

    async def _stream(
        self, call: Call, body: dict[str, Any], targets: list[Target], tokens: int
    ) -> Response:
        async def attempt(t: Target) -> exchange.ChunkStream:
            p = t.deployment.provider
            return await exchange.chat_stream(
                p.adapter, p.transport, body, t.upstream_model, t.public_model
            )

        stream, target, attempts = await call.runtime.dispatcher.run(targets, attempt, tokens)
        ttft = round((time.perf_counter() - call.started) * 1000, 3)
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        relay = self._relay(call, stream, target, attempts, ttft, wants_usage)
        headers = {**call.response_headers(target, len(attempts)), **SSE_HEADERS}
        return StreamingResponse(relay, 200, headers, media_type="text/event-stream")

    async def _relay(  # noqa: PLR0917
        self,
        call: Call,
        stream: exchange.ChunkStream,
        target: Target,
        attempts: list[dict[str, Any]],
        ttft_ms: float,
        wants_usage: bool,
    ) -> AsyncIterator[bytes]:
        seen = StreamOutputs()
        status, left = 200, True
        checks = self.gw.stream_filter(call)
        try:
            async for chunk in stream:
                if checks is not None:
                    chunk = checks.chunk(chunk)  # noqa: PLW2901
                seen.add(chunk)
                if not wants_usage and "usage" in chunk:
                    if not chunk.get("choices"):
                        continue  # the usage-only chunk the gateway asked for itself
                    chunk = {k: v for k, v in chunk.items() if k != "usage"}  # noqa: PLW2901
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"
            tail = checks.flush() if checks is not None else None
            if tail is not None:
                seen.add(tail)
                yield b"data: " + orjson.dumps(tail) + b"\n\n"
            left = False
            yield b"data: [DONE]\n\n"
        except OutputBlocked as exc:
            left, seen.finish_reason = False, "content_filter"
            error = {
                "message": str(exc),
                "type": GuardBlockedError.type,
                "param": None,
                "code": GuardBlockedError.code,
            }
            yield b"data: " + orjson.dumps({"error": error}) + b"\n\n"
        except exchange.BrokenStream as exc:
            left, status = False, exc.failure.status
            error = {
                "message": exc.failure.message,
                "type": "upstream_error",
                "param": None,
                "code": "stream_interrupted",
            }
            yield b"data: " + orjson.dumps({"error": error}) + b"\n\n"
        finally:
            stream.close()
            self.gw.stream_ended(
                call, target, attempts, seen, status=status, ttft_ms=ttft_ms, disconnected=left
            )
            call.done()
