"""Per-request faults from ``x-fake-*`` request headers: the fake upstream's control plane.

Through a gateway, which forwards the body but not arbitrary headers, the same directives
go in the body's ``metadata`` as ``fake_*`` keys: ``{"metadata": {"fake_status": "500"}}``.

``x-fake-status: 429|500|502|503|400|...``   answer with that status and OpenAI's error body
``x-fake-retry-after: S``                    Retry-After seconds on a 429 (default 1)
``x-fake-ttft-ms: MS``                       delay before the first byte (overrides settings)
``x-fake-tokens-per-second: R``              pace of generated tokens (overrides settings)
``x-fake-omit-usage: 1``                     no usage, in the JSON body or in the stream
``x-fake-disconnect-after-tokens: N``        send N content tokens, then drop the connection
``x-fake-hang: 1``                           never answer (until the server shuts down)

Dropping a connection has no ASGI message: the app raises ``DropConnection`` after the
response has started, uvicorn closes the socket (flushing what was written) and
``QuietDrops`` keeps that deliberate fault out of the error log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from infra.fake_upstream.settings import FakeUpstreamSettings


@dataclass(frozen=True, slots=True)
class Faults:
    status: int | None = None
    retry_after: int = 1
    ttft_ms: float = 0.0
    tokens_per_second: float = 0.0
    omit_usage: bool = False
    disconnect_after_tokens: int | None = None
    hang: bool = False
    after_chunks: int | None = None
    """Break a stream after this many events (``POST /_fake/faults``)."""
    drop: bool = False
    """Start the answer, then drop the connection (``POST /_fake/faults``)."""


def _number(headers: Mapping[str, str], name: str, default: float) -> float:
    raw = headers.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if value >= 0 else default


def _flag(headers: Mapping[str, str], name: str) -> bool:
    return headers.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _count(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name, "").strip()
    return int(raw) if raw.isdigit() else None


def read_faults(headers: Mapping[str, str], settings: FakeUpstreamSettings) -> Faults:
    """The request's faults from its (lower-cased) headers; settings give default pacing."""
    if not any(name.startswith("x-fake-") for name in headers):
        return _defaults(settings)
    status = _count(headers, "x-fake-status")
    return Faults(
        status=status if status is not None and 400 <= status <= 599 else None,
        retry_after=int(_number(headers, "x-fake-retry-after", 1)),
        ttft_ms=_number(headers, "x-fake-ttft-ms", settings.ttft_ms),
        tokens_per_second=_number(headers, "x-fake-tokens-per-second", settings.tokens_per_second),
        omit_usage=_flag(headers, "x-fake-omit-usage"),
        disconnect_after_tokens=_count(headers, "x-fake-disconnect-after-tokens"),
        hang=_flag(headers, "x-fake-hang"),
    )


@lru_cache(maxsize=16)
def _defaults(settings: FakeUpstreamSettings) -> Faults:
    return Faults(ttft_ms=settings.ttft_ms, tokens_per_second=settings.tokens_per_second)


class DropConnection(Exception):
    """Raised once a response has started: the server closes the socket mid-response."""


def _is_drop(exc: BaseException | None, depth: int = 0) -> bool:
    """Whether ``exc`` is (or wraps, in a group or as its cause) a ``DropConnection``."""
    if exc is None or depth > 8:
        return False
    if isinstance(exc, DropConnection):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_drop(e, depth + 1) for e in exc.exceptions)
    return _is_drop(exc.__cause__, depth + 1) or _is_drop(exc.__context__, depth + 1)


class QuietDrops(logging.Filter):
    """Hides uvicorn's "Exception in ASGI application" for deliberate drops only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _is_drop(record.exc_info[1]))


class DroppedResponse(Response):
    """Headers promising the whole body, then half of it, then a dropped connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        half = bytes(self.body[: len(self.body) // 2])
        await send({"type": "http.response.body", "body": half, "more_body": True})
        raise DropConnection("x-fake-disconnect-after-tokens")
