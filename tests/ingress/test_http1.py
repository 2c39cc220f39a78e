"""The provider connection pool over real sockets, against servers that answer byte by byte
what a test scripts: reuse, framing, encodings, dropped and stale connections, limits."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from ingress.http1 import READ_BUFFER_LIMIT, ConnectError, Pool, ProtocolError
from tests.harness import free_port

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]
Serve = Callable[[Script], Awaitable["Server"]]


@dataclass
class Server:
    """A loopback server: each connection runs the script once per request it reads."""

    script: Script
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while not writer.is_closing():
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                await self.script(reader, writer, self)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_now -= 1
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> Server:
        server = Server(script)
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        server.port = listening.sockets[0].getsockname()[1]
        servers.append(listening)
        return server

    yield start
    for listening in servers:
        listening.close()


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def replies(*data: bytes, close: bool = False) -> Script:
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        for part in data:
            writer.write(part)
            await writer.drain()
        if close:
            writer.close()

    return script


async def call(pool: Pool, url: str, body: bytes = b"{}") -> tuple[int, bytes]:
    response = await pool.request("POST", url, {"content-type": "application/json"}, body)
    try:
        return response.status, await response.read()
    finally:
        response.release()


def free_slots(pool: Pool) -> int:
    return pool._slots._value


async def test_one_connection_serves_call_after_call(serve: Serve) -> None:
    server = await serve(replies(answer(b'{"ok": true}')))
    pool = Pool(limit=8, connect_timeout_s=2)
    for _ in range(5):
        assert await call(pool, f"{server.url}/v1/chat") == (200, b'{"ok": true}')
    assert server.connections == 1
    assert free_slots(pool) == 8
    pool.close()


async def test_the_request_is_sent_as_built(serve: Serve) -> None:
    # a signed path is the path sent: ":" and "%2F" stay as they are
    server = await serve(replies(answer(b"{}")))
    pool = Pool(limit=8, connect_timeout_s=2)
    url = f"{server.url}/model/arn%3Aaws%2Fx:1/converse?a=b"
    response = await pool.request("POST", url, {"X-Amz-Date": "20261204T000000Z"}, b'{"q": 1}')
    response.release()
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /model/arn%3Aaws%2Fx:1/converse?a=b HTTP/1.1"
    assert f"host: 127.0.0.1:{server.port}" in lines
    assert "X-Amz-Date: 20261204T000000Z" in lines and "content-length: 8" in lines
    assert body == b'{"q": 1}'
    pool.close()


async def test_a_line_break_in_a_header_is_refused_before_anything_is_sent(serve: Serve) -> None:
    server = await serve(replies(answer(b"{}")))
    pool = Pool(limit=8, connect_timeout_s=2)
    with pytest.raises(ValueError, match="line break"):
        await pool.request("POST", server.url, {"x-tenant": "a\r\nx-admin: yes"}, b"")
    assert server.connections == 0 and free_slots(pool) == 8


async def test_chunked_and_close_delimited_answers_are_read_whole(serve: Serve) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    server = await serve(replies(chunked))
    pool = Pool(limit=8, connect_timeout_s=2)
    assert await call(pool, server.url) == (200, b"hello world")
    assert await call(pool, server.url) == (200, b"hello world")
    assert server.connections == 1
    until_close = await serve(replies(b"HTTP/1.1 200 OK\r\n\r\nall of it", close=True))
    assert await call(pool, until_close.url) == (200, b"all of it")
    assert await call(pool, until_close.url) == (200, b"all of it")
    assert until_close.connections == 2  # a close-delimited answer's connection is not reused
    assert free_slots(pool) == 8
    pool.close()


async def test_connection_close_and_gzip_answers(serve: Serve) -> None:
    packed = gzip.compress(b'{"text": "' + b"x" * 5000 + b'"}')
    server = await serve(replies(answer(packed, "content-encoding: gzip", "connection: close")))
    pool = Pool(limit=8, connect_timeout_s=2)
    for _ in range(2):
        status, body = await call(pool, server.url)
        assert status == 200 and body == b'{"text": "' + b"x" * 5000 + b'"}'
    assert server.connections == 2
    pool.close()


async def test_headers_are_case_insensitive_and_error_bodies_read(serve: Serve) -> None:
    limited = answer(b'{"error": "slow down"}', "Retry-After: 7", status="429 Too Many Requests")
    server = await serve(replies(limited))
    pool = Pool(limit=8, connect_timeout_s=2)
    response = await pool.request("POST", server.url, {}, b"{}")
    assert response.status == 429
    assert response.headers["retry-after"] == response.headers["RETRY-AFTER"] == "7"
    assert await response.read() == b'{"error": "slow down"}'
    response.release()
    response.release()  # twice is harmless: the slot is given back once
    assert free_slots(pool) == 8
    pool.close()


async def test_a_connection_the_provider_closed_while_idle_is_not_a_failure(serve: Serve) -> None:
    # keep-alive is advertised, then the server drops the idle connection: the next call
    # must go out on a new one, whether the pool noticed the close yet or not
    server = await serve(replies(answer(b"{}"), close=True))
    pool = Pool(limit=8, connect_timeout_s=2)
    assert await call(pool, server.url) == (200, b"{}")
    assert await call(pool, server.url) == (200, b"{}")  # the close may not have arrived
    await asyncio.sleep(0.05)
    assert await call(pool, server.url) == (200, b"{}")  # it has now
    assert server.connections == 3 and free_slots(pool) == 8
    pool.close()


async def test_an_answer_cut_short_is_a_protocol_error(serve: Serve) -> None:
    server = await serve(replies(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart", close=True))
    pool = Pool(limit=8, connect_timeout_s=2)
    response = await pool.request("POST", server.url, {}, b"{}")
    with pytest.raises(ProtocolError, match="closed the connection mid-answer"):
        await response.read()
    response.release()
    garbage = await serve(replies(b"SMTP ready\r\n\r\n"))
    with pytest.raises(ProtocolError, match=r"not HTTP/1\.1"):
        await call(pool, garbage.url)
    assert free_slots(pool) == 8
    pool.close()


async def test_nothing_listening_is_a_connect_error_naming_no_address() -> None:
    pool = Pool(limit=8, connect_timeout_s=2)
    with pytest.raises(ConnectError) as caught:
        await call(pool, f"http://127.0.0.1:{free_port()}/v1")
    assert str(caught.value) == "ConnectionRefusedError"
    assert free_slots(pool) == 8


async def test_at_most_limit_connections_are_open(serve: Serve) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Server) -> None:
        await asyncio.sleep(0.05)
        writer.write(answer(b"{}"))

    server = await serve(slow)
    pool = Pool(limit=2, connect_timeout_s=2)
    results = await asyncio.gather(*(call(pool, server.url) for _ in range(6)))
    assert results == [(200, b"{}")] * 6
    assert server.most_open == 2 and server.connections == 2
    pool.close()


async def test_a_cancelled_call_closes_its_connection_and_frees_its_slot(serve: Serve) -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Server) -> None:
        await reader.read()  # no answer; returns when the pool closes the connection

    server = await serve(never)
    pool = Pool(limit=1, connect_timeout_s=2)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await call(pool, server.url)
    assert free_slots(pool) == 1
    await asyncio.sleep(0.05)
    assert server.open_now == 0
    pool.close()


async def test_a_slow_reader_pauses_the_socket_and_still_gets_every_byte(serve: Serve) -> None:
    big = bytes(range(256)) * (8 * READ_BUFFER_LIMIT // 256)
    server = await serve(replies(answer(big)))
    pool = Pool(limit=8, connect_timeout_s=2)
    response = await pool.request("POST", server.url, {}, b"{}")
    await asyncio.sleep(0.2)  # the server wrote everything it could; the pool stopped reading
    assert response._buffered <= READ_BUFFER_LIMIT + 256 * 1024
    received = bytearray()
    while data := await response.readany():
        received += data
    response.release()
    assert bytes(received) == big
    assert await call(pool, server.url) == (200, big)  # the connection reads again
    assert server.connections == 1
    pool.close()


async def test_https_to_a_server_that_speaks_no_tls_is_a_connect_error(serve: Serve) -> None:
    server = await serve(replies(answer(b"{}")))
    pool = Pool(limit=8, connect_timeout_s=2)
    with pytest.raises(ConnectError):
        await call(pool, server.url.replace("http://", "https://"))
    assert free_slots(pool) == 8


async def test_an_interim_answer_is_skipped_and_an_unknown_encoding_refused(serve: Serve) -> None:
    interim = b"HTTP/1.1 100 Continue\r\nx-interim: 1\r\n\r\n"
    server = await serve(replies(interim + answer(b"{}", "x-final: 2")))
    pool = Pool(limit=8, connect_timeout_s=2)
    response = await pool.request("POST", server.url, {}, b"{}")
    assert response.status == 200 and await response.read() == b"{}"
    assert dict(response.headers) == {"x-final": "2", "content-length": "2"}
    response.release()
    brotli = await serve(replies(answer(b"\x1b\x00", "content-encoding: br")))
    with pytest.raises(ProtocolError, match=r"unsupported encoding \(br\)"):
        await call(pool, brotli.url)
    assert free_slots(pool) == 8
    pool.close()
