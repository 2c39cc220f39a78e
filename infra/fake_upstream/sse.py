"""Writing a ``text/event-stream``: event by event when paced, in one write when not.

A paced stream goes out as it is generated (Starlette's StreamingResponse, which also stops
generating when the client leaves). An unpaced stream has every event ready at once, so it is
written in one chunk: the same bytes and the same chunked framing, without a socket write per
token, which would otherwise make the fake, not the gateway, the bottleneck of a benchmark.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from infra.fake_upstream.faults import DropConnection

MEDIA_TYPE = "text/event-stream"


class _AtOnce(StreamingResponse):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts: list[bytes] = []
        dropped: DropConnection | None = None
        try:
            async for event in self.body_iterator:
                parts.append(event.encode() if isinstance(event, str) else bytes(event))
        except DropConnection as exc:
            dropped = exc
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        body = b"".join(parts)
        await send({"type": "http.response.body", "body": body, "more_body": dropped is not None})
        if dropped is not None:
            raise dropped


def event_stream(
    events: AsyncIterator[bytes],
    headers: dict[str, str],
    paced: bool,
    media_type: str = MEDIA_TYPE,
) -> Response:
    if paced:
        return StreamingResponse(events, 200, headers, media_type)
    return _AtOnce(events, 200, headers, media_type)
