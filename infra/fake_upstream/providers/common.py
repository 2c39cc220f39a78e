"""What every provider route shares: error rendering, pacing, and how an answer goes out.

A provider module supplies a handler (request → response) and a renderer (``ApiError`` → its
own error body); ``guarded`` joins them. ``send_json`` and ``send_stream`` apply the request's
faults the same way for every wire format (time to first token, token pacing, a dropped
connection, a stream broken after N events) and count the served tokens only once the whole
answer went out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.faults import DropConnection, DroppedResponse, Faults
from infra.fake_upstream.sse import MEDIA_TYPE, event_stream
from infra.fake_upstream.upstream import Upstream

Handler = Callable[[Upstream, Request], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
Render = Callable[[ApiError], Response]
Done = Callable[[], None]


def guarded(upstream: Upstream, handler: Handler, render: Render) -> Endpoint:
    """An endpoint answering an ``ApiError`` in its provider's error format, and counting it."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(upstream, request)
        except ApiError as exc:
            upstream.stats.answered(exc.status)
            return render(exc)

    return endpoint


def dumps(body: Any) -> bytes:
    return orjson.dumps(body)


async def before_answer(upstream: Upstream, faults: Faults, tokens: int, stream: bool) -> None:
    """Wait the time to first token, and (not streaming) the time to generate ``tokens``."""
    await upstream.pause(faults.ttft_ms / 1000)
    if not stream and faults.tokens_per_second > 0:
        await upstream.pause(tokens / faults.tokens_per_second)


def send_json(
    upstream: Upstream, faults: Faults, body: bytes, headers: dict[str, str], done: Done
) -> Response:
    upstream.stats.answered(200)
    if faults.drop or faults.disconnect_after_tokens is not None:
        upstream.stats.disconnects += 1
        return DroppedResponse(body, 200, headers, "application/json")
    done()
    return Response(body, 200, headers, "application/json")


def send_stream(
    upstream: Upstream,
    faults: Faults,
    events: AsyncIterator[bytes],
    headers: dict[str, str],
    done: Done,
    *,
    media_type: str = MEDIA_TYPE,
) -> Response:
    """Stream ``events``; break after ``after_chunks`` (or at once on ``drop``)."""
    upstream.stats.answered(200)
    limit = faults.after_chunks
    if limit is None:
        limit = 0 if faults.drop else faults.disconnect_after_tokens
    delay = 1 / faults.tokens_per_second if faults.tokens_per_second > 0 else 0.0

    async def paced() -> AsyncIterator[bytes]:
        sent = 0
        async for event in events:
            if limit is not None and sent >= limit:
                upstream.stats.disconnects += 1
                raise DropConnection("a scripted fault broke the stream")
            if delay and sent:
                await upstream.pause(delay)
            yield event
            sent += 1
        done()

    return event_stream(paced(), headers, faults.tokens_per_second > 0, media_type)


def sse(event: str | None, data: Any, crlf: bool = False) -> bytes:
    """One server-sent event: an ``event:`` line when named, then ``data:`` with JSON."""
    head = f"event: {event}\n".encode() if event else b""
    end = b"\r\n\r\n" if crlf else b"\n\n"
    return head + b"data: " + orjson.dumps(data) + end


def require_key(given: str | None, expected: str | None) -> bool:
    """A key must be present; when the fake is configured with one, it must be that one."""
    return bool(given) and (expected is None or given == expected)
