"""uvicorn's httptools protocol, sending a response's head and its first body bytes together.

uvicorn writes the status line and headers as soon as the application sends
``http.response.start``, and the body as a second write when ``http.response.body``
follows, a moment later in the same loop iteration. Each write to a socket is a system call
and, on loopback or a busy host, a wake-up of the client for half an answer. Here the head
waits for the next write of the connection (the body, joined to it) or, when none follows
in this loop iteration (a stream's first chunk still upstream), for the next iteration:
never longer, so a stream's headers are not held back waiting for its first token.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeadHoldingTransport:
    """A connection's transport that holds the first write after a request's headers (the
    response head) until the next write or the next loop iteration, whichever is first.

    Writes are never reordered: anything written meanwhile goes out behind the head, and
    closing sends what is held first."""

    __slots__ = ("_held", "_loop", "_transport", "expect_head")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self.expect_head = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is not None:
            data = self._held + data
            self._held = None
        elif self.expect_head:
            self.expect_head = False
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        """Send what is held (a closed connection drops it, as its transport would)."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:  # the rest of the transport interface, as is
        return getattr(self._transport, name)


class HeadCoalescingProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=HeadCoalescingProtocol)``: uvicorn's, on a head-holding
    transport."""

    transport: Any  # HeadHoldingTransport, standing in for asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        holding = HeadHoldingTransport(transport, self.loop)  # type: ignore[arg-type]
        super().connection_made(holding)  # type: ignore[arg-type]

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self.transport.expect_head = True
