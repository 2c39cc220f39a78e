"""``POST /v1/messages``: Anthropic's own API in front, for Anthropic SDK users.

The request is translated to the canonical (OpenAI) form, routed and dispatched like any
chat call (so it may land on any provider), and the answer or stream is translated back
into Anthropic's message and event shapes. Errors use Anthropic's error body.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ingress import exchange
from ingress.anthropic_translate import MessageEvents, to_anthropic_message, to_canonical
from ingress.errors import GatewayError, GuardBlockedError, InvalidRequestError
from ingress.gateway import Call, Gateway
from ingress.guards import OutputBlocked
from ingress.routing.router import Target
from ingress.stream_outputs import StreamOutputs, outputs_of

ENDPOINT = "/v1/messages"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def anthropic_error(exc: GatewayError, request_id: str | None) -> Response:
    body = {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(exc.status, "api_error"), "message": exc.message},
    }
    headers = dict(exc.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return Response(orjson.dumps(body), exc.status, headers, "application/json")


class MessagesService:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def handle(self, request: Request) -> Response:
        call: Call | None = None
        streaming = False
        try:
            call, body = await self.gw.open(request, ENDPOINT)
            canonical = to_canonical(body)
            model = canonical["model"]
            targets = await self.gw.route(call, model, canonical)
            call.stream = bool(canonical.get("stream"))
            # the canonical body: what replays and token counting read, whatever the door
            canonical = await self.gw.received(call, model, call.stream, canonical)
            if call.stream:
                response = await self._stream(call, canonical, targets)
                streaming = True
                return response
            return await self._complete(call, canonical, targets)
        except GatewayError as exc:
            if call is not None:
                self.gw.failed(call, exc)
            return anthropic_error(exc, getattr(request.state, "request_id", None))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            error = InvalidRequestError(f"malformed Messages request: {exc}")
            if call is not None:
                self.gw.failed(call, error)
            return anthropic_error(error, getattr(request.state, "request_id", None))
        finally:
            if call is not None and not streaming:
                call.done()

    async def _complete(self, call: Call, body: dict[str, Any], targets: list[Target]) -> Response:
        async def attempt(t: Target) -> dict[str, Any]:
            p = t.deployment.provider
            return await exchange.chat(
                p.adapter, p.transport, body, t.upstream_model, t.public_model
            )

        answer, target, attempts = await call.runtime.dispatcher.run(targets, attempt)
        answer, blocked = self.gw.checked_answer(call, answer)
        outputs, finish = outputs_of(answer)
        usage = answer.get("usage")
        finish = "content_filter" if blocked else finish
        self.gw.completed(
            call, target, attempts, outputs=outputs, finish_reason=finish, usage=usage
        )
        headers = call.response_headers(target, len(attempts))
        if blocked is not None:
            return anthropic_error(GuardBlockedError(str(blocked), headers=headers), call.rid)
        message = to_anthropic_message(answer, body["model"])
        return Response(orjson.dumps(message), 200, headers, "application/json")

    async def _stream(self, call: Call, body: dict[str, Any], targets: list[Target]) -> Response:
        async def attempt(t: Target) -> exchange.ChunkStream:
            p = t.deployment.provider
            return await exchange.chat_stream(
                p.adapter, p.transport, body, t.upstream_model, t.public_model
            )

        stream, target, attempts = await call.runtime.dispatcher.run(targets, attempt)
        ttft = round((time.perf_counter() - call.started) * 1000, 3)

        async def relay() -> AsyncIterator[bytes]:
            events = MessageEvents(f"msg_{uuid.uuid4().hex[:24]}", body["model"])
            seen = StreamOutputs()
            status, left = 200, True
            checks = self.gw.stream_filter(call)
            try:
                async for chunk in stream:
                    if checks is not None:
                        chunk = checks.chunk(chunk)  # noqa: PLW2901
                    seen.add(chunk)
                    for event in events.feed(chunk):
                        yield event
                tail = checks.flush() if checks is not None else None
                if tail is not None:
                    seen.add(tail)
                    for event in events.feed(tail):
                        yield event
                left = False
                for event in events.finish():
                    yield event
            except OutputBlocked as exc:
                left, seen.finish_reason = False, "content_filter"
                yield events.error(str(exc))
            except exchange.BrokenStream as exc:
                left, status = False, exc.failure.status
                yield events.error(exc.failure.message)
            finally:
                stream.close()
                self.gw.stream_ended(
                    call, target, attempts, seen, status=status, ttft_ms=ttft, disconnected=left
                )
                call.done()

        headers = {**call.response_headers(target, len(attempts)), "cache-control": "no-cache"}
        return StreamingResponse(relay(), 200, headers, media_type="text/event-stream")
