"""The head-coalescing server protocol under uvicorn over real sockets: one write a JSON
answer, a stream's head not held back for its first chunk, keep-alive and pipelining in
order, and held bytes sent before a close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from ingress.server_protocol import HeadCoalescingProtocol, HeadHoldingTransport
from tests.harness import free_port

WRITES: list[bytes] = []
"""What reached the real transports of the servers below, write by write."""


class _Recording:
    """The real transport, every write noted on its way through."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        WRITES.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _RecordedProtocol(HeadCoalescingProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(_Recording(transport))  # type: ignore[arg-type]


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.5)  # the first token is slow to come
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b'{"path": "' + scope["path"].encode() + b'"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def server() -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=port, http=_RecordedProtocol, log_level="warning", loop="none"
    )
    served = uvicorn.Server(config)
    task = asyncio.create_task(served.serve())
    while not served.started:  # noqa: ASYNC110  # uvicorn offers only the flag
        await asyncio.sleep(0.01)
    WRITES.clear()
    yield port
    served.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


async def _answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
    return head, await reader.readexactly(length)


def _get(path: str, close: bool = False) -> bytes:
    extra = b"connection: close\r\n" if close else b""
    return b"GET " + path.encode() + b" HTTP/1.1\r\nhost: t\r\n" + extra + b"\r\n"


async def test_a_json_answer_leaves_in_one_write_head_and_body(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(_get("/one"))
    head, body = await _answer(reader)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == b'{"path": "/one"}'
    assert len(WRITES) == 1
    assert WRITES[0] == head + body


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(_get("/first"))
    assert (await _answer(reader))[1] == b'{"path": "/first"}'
    writer.write(_get("/second") + _get("/third"))  # pipelined
    assert (await _answer(reader))[1] == b'{"path": "/second"}'
    assert (await _answer(reader))[1] == b'{"path": "/third"}'
    writer.close()
    assert b"".join(WRITES).count(b"HTTP/1.1 200 OK") == 3


async def test_a_stream_head_is_not_held_for_its_first_chunk(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(_get("/stream"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.3)  # the chunk takes 0.5 s
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in head
    rest = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 2)
    writer.close()
    assert b"data: 1\n\n" in rest


async def test_connection_close_still_gets_the_whole_answer(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(_get("/last", close=True))
    head, body = await _answer(reader)
    assert await reader.read() == b""  # then the server closed
    writer.close()
    assert b"connection: close" in head
    assert body == b'{"path": "/last"}'


class _Transport:
    """Stands for a socket transport: what was written, whether it was closed."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


async def test_held_bytes_go_out_before_a_close_and_never_after_one() -> None:
    loop = asyncio.get_running_loop()
    inner = _Transport()
    holding = HeadHoldingTransport(inner, loop)  # type: ignore[arg-type]
    holding.expect_head = True
    holding.write(b"head")
    assert inner.written == []
    holding.close()
    assert inner.written == [b"head"]
    assert inner.closed

    inner = _Transport()
    holding = HeadHoldingTransport(inner, loop)  # type: ignore[arg-type]
    holding.expect_head = True
    holding.write(b"head")
    inner.closed = True  # the peer went away meanwhile
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert inner.written == []


async def test_only_the_first_write_after_a_request_is_held() -> None:
    inner = _Transport()
    holding = HeadHoldingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    holding.write(b"unprompted")  # no request headers came: written at once
    assert inner.written == [b"unprompted"]
    holding.expect_head = True
    holding.write(b"head;")
    holding.write(b"body")
    holding.write(b"more")
    assert inner.written == [b"unprompted", b"head;body", b"more"]
