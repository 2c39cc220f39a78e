"""HTTP to providers: one pool of keep-alive connections per provider, four timeouts.

``connect_s`` bounds opening a connection, ``first_token_s`` the wait for the first byte of
the answer (headers for JSON calls, the first body chunk for streams), ``idle_s`` the
silence between stream chunks, ``total_s`` the whole call. The pool is ``ingress.http1``:
measured against aiohttp and httpx for this job (``tests/bench/http_clients.py``), it
costs a quarter of aiohttp's client CPU a call, and aiohttp a twelfth of httpx's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from ingress.http1 import ConnectError, HttpError, Pool, Response
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
    """Case-insensitive (a multidict as received): read only on a failure."""
    body: bytes


class Transport:
    def __init__(
        self,
        name: str,
        timeouts: Timeouts,
        max_connections: int = 256,
        ca_cert: str | None = None,
        proxy: str | None = None,
    ) -> None:
        self.name = name
        self.timeouts = timeouts
        self._max_connections = max_connections
        self._ca_cert = ca_cert
        self._proxy = proxy
        self._pool: Pool | None = None

    def _client(self) -> Pool:
        # no cookie jar, on purpose: a gateway must not carry one caller's cookies into
        # another's calls. ``connect_s`` bounds opening a connection (where the pool has
        # none free); the call's own deadline bounds the wait for a pool slot.
        if self._pool is None or self._pool.closed:
            self._pool = Pool(
                limit=self._max_connections,
                connect_timeout_s=self.timeouts.connect_s,
                ca_cert=self._ca_cert,
                proxy=self._proxy,
            )
        return self._pool

    async def send(self, call: UpstreamCall) -> Answer:
        """A JSON call: the whole answer, within first_token_s and total_s."""
        limit = min(self.timeouts.first_token_s, self.timeouts.total_s)
        try:
            async with asyncio.timeout(limit):
                response = await self._client().request(
                    call.method, call.url, call.headers, call.body
                )
                try:
                    body = await response.read()
                finally:
                    response.release()
                return Answer(response.status, response.headers, body)
        except TimeoutError as exc:
            raise TransportError(
                "first_token", f"{self.name} did not answer within {limit:g} s"
            ) from exc
        except HttpError as exc:
            raise _client_error(self.name, exc) from exc

    async def stream(self, call: UpstreamCall) -> Streaming:
        """Open a streaming call; the caller must ``close()`` what it gets back."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeouts.first_token_s):
                response = await self._client().request(
                    call.method, call.url, call.headers, call.body
                )
        except TimeoutError as exc:
            raise TransportError(
                "first_token",
                f"{self.name} did not answer within {self.timeouts.first_token_s:g} s",
            ) from exc
        except HttpError as exc:
            raise _client_error(self.name, exc) from exc
        return Streaming(self, response, started)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class Streaming:
    """An open streaming answer: status and headers now, body chunks as they come."""

    def __init__(self, transport: Transport, response: Response, started: float) -> None:
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
        except (TimeoutError, HttpError):
            return b""
        finally:
            self.close()

    async def chunks(self) -> AsyncIterator[bytes]:
        timeouts = self._transport.timeouts
        name = self._transport.name
        deadline = self._started + timeouts.total_s
        response = self._response
        while True:
            wait = timeouts.idle_s if self.first_byte else timeouts.first_token_s
            wait = min(wait, deadline - time.monotonic())
            phase = "idle" if self.first_byte else "first_token"
            if wait <= 0:
                raise TransportError("total", f"{name}: the call took over {timeouts.total_s:g} s")
            try:
                async with asyncio.timeout(wait):
                    data = await response.readany()
            except TimeoutError as exc:
                raise TransportError(phase, f"{name} sent nothing for {wait:g} s") from exc
            except HttpError as exc:
                raise _client_error(name, exc) from exc
            if not data:
                return
            self.first_byte = True
            yield data

    def close(self) -> None:
        self._response.release()


def _client_error(name: str, exc: HttpError) -> TransportError:
    if isinstance(exc, ConnectError):
        return TransportError("connect", f"{name} is unreachable ({exc})")
    return TransportError("protocol", f"{name} broke the connection ({exc})")
