"""HTTP to providers: one pooled keep-alive aiohttp session per provider, four timeouts.

``connect_s`` bounds opening a connection, ``first_token_s`` the wait for the first byte of
the answer (headers for JSON calls, the first body chunk for streams), ``idle_s`` the
silence between stream chunks, ``total_s`` the whole call. aiohttp was measured against
httpx for this job (``tests/bench/http_clients.py``): about 12x less client CPU per call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import orjson

from ingress.providers.base import UpstreamCall
from schemas.routing_config import Timeouts


class TransportError(Exception):
    """The provider could not be reached or went silent; ``phase`` says when."""

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(message)
        self.phase = phase  # connect | first_token | idle | total | protocol

    @property
    def timed_out(self) -> bool:
        return self.phase in ("first_token", "idle", "total")


@dataclass(slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    """Case-insensitive (aiohttp's multidict as received): read only on a failure."""
    body: bytes


class Transport:
    def __init__(self, name: str, timeouts: Timeouts, max_connections: int = 256) -> None:
        self.name = name
        self.timeouts = timeouts
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=60, ttl_dns_cache=300
            )
            # sock_connect bounds opening a connection (where the pool has none free);
            # ``connect`` would arm a timer on every call, pooled ones included, and the
            # call's own deadline (``send``, ``stream``) bounds the wait for a pool slot
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeouts.connect_s)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                # a gateway must not carry one caller's cookies into another's calls, and
                # the jar cost a look-up on every request and every answer
                cookie_jar=aiohttp.DummyCookieJar(),
                json_serialize=lambda o: orjson.dumps(o).decode(),
                auto_decompress=True,
            )
        return self._session

    async def send(self, call: UpstreamCall) -> Answer:
        """A JSON call: the whole answer, within first_token_s and total_s."""
        limit = min(self.timeouts.first_token_s, self.timeouts.total_s)
        try:
            async with asyncio.timeout(limit):
                async with self._client().request(
                    call.method, call.url, data=call.body or None, headers=call.headers
                ) as response:
                    body = await response.read()
                    return Answer(response.status, response.headers, body)
        except TimeoutError as exc:
            raise TransportError(
                "first_token", f"{self.name} did not answer within {limit:g} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise _client_error(self.name, exc) from exc

    async def stream(self, call: UpstreamCall) -> Streaming:
        """Open a streaming call; the caller must ``close()`` what it gets back."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeouts.first_token_s):
                response = await self._client().request(
                    call.method, call.url, data=call.body or None, headers=call.headers
                )
        except TimeoutError as exc:
            raise TransportError(
                "first_token",
                f"{self.name} did not answer within {self.timeouts.first_token_s:g} s",
            ) from exc
        except aiohttp.ClientError as exc:
            raise _client_error(self.name, exc) from exc
        return Streaming(self, response, started)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Streaming:
    """An open streaming answer: status and headers now, body chunks as they come."""

    def __init__(
        self, transport: Transport, response: aiohttp.ClientResponse, started: float
    ) -> None:
        self._transport = transport
        self._response = response
        self._started = started
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers  # case-insensitive
        self.first_byte = False

    async def read_all(self) -> bytes:
        try:
            async with asyncio.timeout(self._transport.timeouts.idle_s):
                return await self._response.read()
        except (TimeoutError, aiohttp.ClientError):
            return b""
        finally:
            self.close()

    async def chunks(self) -> AsyncIterator[bytes]:
        timeouts = self._transport.timeouts
        name = self._transport.name
        deadline = self._started + timeouts.total_s
        content = self._response.content
        while True:
            wait = timeouts.idle_s if self.first_byte else timeouts.first_token_s
            wait = min(wait, deadline - time.monotonic())
            phase = "idle" if self.first_byte else "first_token"
            if wait <= 0:
                raise TransportError("total", f"{name}: the call took over {timeouts.total_s:g} s")
            try:
                async with asyncio.timeout(wait):
                    data = await content.readany()
            except TimeoutError as exc:
                raise TransportError(phase, f"{name} sent nothing for {wait:g} s") from exc
            except aiohttp.ClientError as exc:
                raise _client_error(name, exc) from exc
            if not data:
                return
            self.first_byte = True
            yield data

    def close(self) -> None:
        self._response.release()
        self._response.close()


def _client_error(name: str, exc: aiohttp.ClientError) -> TransportError:
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ServerTimeoutError):
        return TransportError("connect", f"{name} is unreachable ({type(exc).__name__})")
    return TransportError("protocol", f"{name} broke the connection ({type(exc).__name__})")
