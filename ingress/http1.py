"""Pooled HTTP/1.1 keep-alive connections to providers, answers parsed by httptools (llhttp).

aiohttp's ``ClientSession`` cost ~84 µs of CPU a call on the bench machine, where the same
exchange on a bare protocol cost ~21 µs (``tests/bench/http_clients.py``): its request
object, URL and header handling, tracing and timers are generic work paid on every call, and
at 16 connections that was a fifth of the ingress. This module keeps only what a provider
call needs: one pool per origin, the request target sent exactly as given (a signed path is
the path sent), TLS, chunked and close-delimited answers, gzip/deflate answers, read-side
flow control for slow stream readers, an HTTP proxy (CONNECT tunnels to https origins,
absolute-form requests to http ones), and a clear error when a connection drops.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from typing import cast
from urllib.parse import unquote, urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

USER_AGENT = "tollgate/0.1"
KEEPALIVE_S = 60.0
"""An idle pooled connection older than this is closed rather than reused."""
READ_BUFFER_LIMIT = 256 * 1024
"""Unread answer bytes above which the socket stops being read (a slow stream reader)."""

_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}

Origin = tuple[str, str, int]


class HttpError(Exception):
    """The exchange failed below HTTP semantics: no answer, or a broken one."""


class ConnectError(HttpError):
    """No connection could be opened (refused, unresolvable, TLS failed, too slow)."""


class ProtocolError(HttpError):
    """The connection dropped mid-exchange or the answer was not valid HTTP/1.1."""


class Proxy:
    """An HTTP proxy between the pool and its origins; its credentials become one header."""

    __slots__ = ("authorization", "host", "port")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError("a proxy is an http://[user:password@]host[:port] URL")
        if any(c in parts.netloc for c in " \r\n"):
            raise ValueError("a proxy URL with whitespace cannot be used")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.authorization: str | None = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.authorization = "Basic " + base64.b64encode(pair.encode()).decode()

    def __repr__(self) -> str:  # never the credentials
        return f"Proxy({self.host}:{self.port})"


class _Target:
    """What a URL contributes to a request, worked out once per distinct URL."""

    __slots__ = ("authority", "head", "host", "newlines", "origin", "port")

    def __init__(self, url: str, proxy: Proxy | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
        netloc = parts.netloc.rpartition("@")[2]
        host = netloc if parts.port != _DEFAULT_PORTS[parts.scheme] else netloc.rsplit(":", 1)[0]
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if any(c in target for c in " \r\n") or any(c in host for c in " \r\n"):
            raise ValueError(f"a URL with whitespace cannot be sent: {url!r}")
        self.origin: Origin = (parts.scheme, parts.hostname, port)
        self.host = parts.hostname
        self.port = port
        self.authority = f"{host if ':' in host else f'{host}:{port}'}"
        """host:port, as a CONNECT request names the origin."""
        if proxy is not None and parts.scheme == "http":  # the proxy forwards it: absolute form
            self.head = f" http://{host}{target} HTTP/1.1\r\nhost: {host}\r\n"
            if proxy.authorization:
                self.head += f"proxy-authorization: {proxy.authorization}\r\n"
        else:
            self.head = f" {target} HTTP/1.1\r\nhost: {host}\r\n"
        self.newlines = self.head.count("\n")


class Headers(Mapping[str, str]):
    """An answer's headers, case-insensitive, decoded on first use: a gateway reads them only
    when the call failed (Retry-After, an error's type), so most answers never pay for it."""

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._decoded: CIMultiDictProxy[str] | None = None

    def _all(self) -> CIMultiDictProxy[str]:
        if self._decoded is None:
            pairs = ((name.decode("latin-1"), value.decode("latin-1")) for name, value in self._raw)
            self._decoded = CIMultiDictProxy(CIMultiDict(pairs))
        return self._decoded

    def __getitem__(self, name: str) -> str:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._raw)

    def getall(self, name: str) -> list[str]:
        return self._all().getall(name, [])


class Response:
    """One answer: status and headers once they arrived, the body as it comes."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_connection",
        "_decoder",
        "_done",
        "_error",
        "_framed",
        "_informational",
        "_raw_headers",
        "_until_eof",
        "_waiter",
        "headers",
        "status",
    )

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._error: HttpError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._decoder: zlib._Decompress | None = None
        self._informational = False
        self._until_eof = False
        self.status = 0
        self._framed = False
        self.headers = Headers(self._raw_headers)

    async def read(self) -> bytes:
        """The whole body (decoded), then the connection goes back to its pool."""
        parts = []
        while data := await self.readany():
            parts.append(data)
        return b"".join(parts)

    async def readany(self) -> bytes:
        """Whatever body bytes arrived since the last call, waiting for some; b"" at the end."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            await self._wait()
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        if self._buffered > READ_BUFFER_LIMIT:
            self._connection.resume_reading()
        self._buffered = 0
        return data

    def release(self) -> None:
        """Done with it: a complete answer frees its connection for reuse, else it is closed.

        Idempotent: a stream may be released on its end and again on the way out."""
        connection = self._connection
        if connection.response is not self:
            return
        connection.response = None
        if self._done and self._error is None and connection.keep_alive:
            connection.pool.put_back(connection)
        else:
            connection.pool.discard(connection)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # parser callbacks, through the connection

    def headers_complete(self, status: int) -> None:
        if 100 <= status < 200:  # 100 Continue and the like: the real answer follows
            self._informational = True
            self._raw_headers.clear()
            self._framed = False
            self._decoder = None
            return
        self.status = status
        self._until_eof = not self._framed and status not in (204, 304)
        self._wake()

    def header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name, value))
        # only the few that change how the body is read are looked at now
        if len(name) in (14, 16, 17):
            lowered = name.lower()
            if lowered in (b"content-length", b"transfer-encoding"):
                self._framed = True
            elif lowered == b"content-encoding":
                encoding = value.decode("latin-1").strip().lower()
                if encoding in _ENCODINGS:
                    self._decoder = zlib.decompressobj(_ENCODINGS[encoding])
                elif encoding != "identity":
                    self.fail(ProtocolError(f"an answer in an unsupported encoding ({encoding})"))

    def body(self, data: bytes) -> None:
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error as exc:
                self.fail(ProtocolError(f"a corrupt compressed answer ({exc})"))
                return
        if data:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered > READ_BUFFER_LIMIT:
                self._connection.pause_reading()
            self._wake()

    def complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if self._decoder is not None:
            rest = self._decoder.flush()
            if rest:
                self._chunks.append(rest)
        self._done = True
        self._wake()

    def lost(self) -> None:
        """The connection closed: the end of a close-delimited body, else a failure."""
        if self._done:
            return
        if self._until_eof and self.status:
            self.complete()
        else:
            self.fail(ProtocolError("the provider closed the connection mid-answer"))

    def fail(self, error: HttpError) -> None:
        if self._error is None and not self._done:
            self._error = error
        self._wake()


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one exchange at a time."""

    def __init__(self, pool: Pool, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None
        self.closed = False
        self.idle_since = 0.0
        self.keep_alive = False
        self.answered = False
        """Whether any byte of the current exchange's answer came back."""
        self._reading_paused = False
        self._tunnel: asyncio.Future[bytes] | None = None
        self._tunnel_head = b""

    async def open_tunnel(self, proxy: Proxy, target: _Target) -> None:
        """Ask the proxy for a tunnel to ``target``'s origin; raises unless it agreed."""
        assert self.transport is not None
        lines = [f"CONNECT {target.authority} HTTP/1.1\r\nhost: {target.authority}\r\n"]
        if proxy.authorization:
            lines.append(f"proxy-authorization: {proxy.authorization}\r\n")
        self._tunnel = asyncio.get_running_loop().create_future()
        self.transport.write(("".join(lines) + "\r\n").encode())
        try:
            head = await self._tunnel
        finally:
            self._tunnel = None
        status_line = head.split(b"\r\n", 1)[0].split(b" ", 2)
        status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
        if not 200 <= status < 300:
            hint = ": check the credentials in the provider's `proxy`" if status == 407 else ""
            raise ConnectError(f"the proxy answered {status or 'not in HTTP'} to CONNECT{hint}")

    def send(self, data: bytes) -> Response:
        assert self.transport is not None
        self.response = response = Response(self)
        self.answered = False
        self.transport.write(data)
        return response

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:  # the proxy's answer to CONNECT: its head only
            self._tunnel_head += data
            ended = b"\r\n\r\n" in self._tunnel_head or len(self._tunnel_head) > 16384
            if ended and not self._tunnel.done():
                self._tunnel.set_result(self._tunnel_head)
            return
        if self.response is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.response is not None:
                self.response.fail(ProtocolError(f"the provider's answer is not HTTP/1.1 ({exc})"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._tunnel is not None and not self._tunnel.done():
            self._tunnel.set_result(self._tunnel_head)  # refused by hanging up
        if self.response is not None:
            self.response.lost()

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.response is not None:
            self.response.header(name, value)

    def on_headers_complete(self) -> None:
        # read here: llhttp resets its flags once the message is complete
        self.keep_alive = self.parser.should_keep_alive()
        if self.response is not None:
            self.response.headers_complete(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response.body(body)

    def on_message_complete(self) -> None:
        if self.response is not None:
            self.response.complete()


class Pool:
    """Connections to any number of origins, at most ``limit`` open at once."""

    def __init__(
        self,
        *,
        limit: int,
        connect_timeout_s: float,
        ca_cert: str | None = None,
        proxy: str | None = None,
    ) -> None:
        self._limit = limit
        self._proxy = Proxy(proxy) if proxy else None
        """Where every connection goes first, when set (CONNECT tunnels to https origins)."""
        self._connect_timeout_s = connect_timeout_s
        self._ca_cert = ca_cert
        """A PEM file of the CAs to trust for https origins; None: the system's."""
        self._slots = asyncio.Semaphore(limit)
        self._idle: dict[Origin, list[_Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._tls: ssl.SSLContext | None = None
        self.closed = False

    async def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes = b""
    ) -> Response:
        """Send one request; returns once the answer's status and headers are in.

        The caller must ``release()`` the response (``read()`` does not)."""
        target = self._target(url)
        data = _head(method, target, headers, body) + body
        await self._slots.acquire()
        connection = self._reused(target.origin)
        if connection is not None:
            try:
                return await _exchange(connection, data)
            except _Stale:  # the provider closed it as we sent: once more, on a new one
                await self._slots.acquire()
        try:
            connection = await self._connect(target)
        except BaseException:
            self._slots.release()
            raise
        try:
            return await _exchange(connection, data)
        except _Stale as exc:
            raise ProtocolError("the provider closed the connection without answering") from exc

    def put_back(self, connection: _Connection) -> None:
        self._slots.release()
        if self.closed or connection.closed:
            connection.close()
            return
        connection.resume_reading()
        connection.idle_since = time.monotonic()
        self._idle.setdefault(connection.origin, []).append(connection)

    def discard(self, connection: _Connection) -> None:
        self._slots.release()
        connection.close()

    def close(self) -> None:
        self.closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) > 4096:  # URLs with per-call parts must not grow this
                self._targets.clear()
            target = self._targets[url] = _Target(url, self._proxy)
        return target

    def _reused(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        stale = time.monotonic() - KEEPALIVE_S
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.idle_since > stale:
                return connection
            connection.close()
        return None

    async def _connect(self, target: _Target) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if target.origin[0] == "https" else None
        proxy = self._proxy
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                if proxy is None:
                    _, connection = await loop.create_connection(
                        lambda: _Connection(self, target.origin),
                        target.host,
                        target.port,
                        ssl=tls,
                        server_hostname=target.host if tls else None,
                    )
                    return connection
                _, connection = await loop.create_connection(
                    lambda: _Connection(self, target.origin), proxy.host, proxy.port
                )
                if tls is not None:
                    await connection.open_tunnel(proxy, target)
                    assert connection.transport is not None
                    connection.transport = cast(
                        "asyncio.Transport",
                        await loop.start_tls(
                            connection.transport, connection, tls, server_hostname=target.host
                        ),
                    )
                return connection
        except BaseException as exc:
            if connection is not None:
                connection.close()
            if isinstance(exc, TimeoutError):
                raise ConnectError(f"no connection within {self._connect_timeout_s:g} s") from exc
            if isinstance(exc, (OSError, ssl.SSLError)):
                # the class only: the detail names the provider's address, which is not the
                # caller's business (it stays on the exception's cause for the logs)
                raise ConnectError(type(exc).__name__) from exc
            raise

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=self._ca_cert)
        return self._tls


class _Stale(Exception):
    """A connection closed before one byte of the answer came back."""


async def _exchange(connection: _Connection, data: bytes) -> Response:
    """Write one request; wait for the answer's headers. On failure the slot is given back."""
    response = connection.send(data)
    try:
        while not response.status:
            if response._error is not None:
                if connection.closed and not connection.answered:
                    raise _Stale from response._error
                raise response._error
            await response._wait()
    except BaseException:
        response.release()
        raise
    return response


def _head(method: str, target: _Target, headers: dict[str, str], body: bytes) -> bytes:
    """The request line and headers; a CR or LF inside a header would split it, so refused."""
    lines = [method, target.head]
    agent = False
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _OWN_HEADERS:
            continue
        agent = agent or lowered == "user-agent"
        lines.append(f"{name}: {value}\r\n")
    if not agent:
        lines.append(f"user-agent: {USER_AGENT}\r\n")
    lines.append(f"content-length: {len(body)}\r\n\r\n")
    text = "".join(lines)
    expected = target.newlines + len(lines) - 1
    if text.count("\n") != expected or text.count("\r") != expected:
        raise ValueError("a header name or value holds a line break")
    return text.encode()
