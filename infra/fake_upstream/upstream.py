"""The fake's shared state and the checks every model call passes, in the providers' order.

Order: record the request (``/_fake/last``) → API key (401/403, the provider's own check) →
``x-fake-hang`` → a queued fault (``/_fake/faults``) → rate limit (429) → ``x-fake-status``
→ then the handler: JSON body (400) → model (400 when missing, 404 when unknown). Waits go
through ``pause`` so a shutting down server releases hung and slow requests at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request

from infra.fake_upstream import errors, provider_headers
from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.faults import DropConnection, Faults, read_faults
from infra.fake_upstream.ratelimit import SlidingWindow
from infra.fake_upstream.recorder import LastRequests, record
from infra.fake_upstream.scripted import FaultQueue, ScriptedFault
from infra.fake_upstream.settings import FakeUpstreamSettings
from infra.fake_upstream.stats import Stats

OPENAI_VERSION = provider_headers.OPENAI_VERSION

Check = Callable[[Request], None]
"""A provider's credential check: raises that provider's 401/403 ``ApiError``."""
NO_RETRY_HEADER = frozenset(("gemini", "bedrock"))  # their retry hint is not a header


class Upstream:
    def __init__(self, settings: FakeUpstreamSettings) -> None:
        self.settings = settings
        self.stats = Stats()
        self.window = SlidingWindow(settings.rpm_limit)
        self.models = frozenset(settings.models)
        self.closing = asyncio.Event()
        self.scripted = FaultQueue()
        self.last = LastRequests()
        self._bearer = f"Bearer {settings.api_key}" if settings.api_key is not None else None

    def close(self) -> None:
        """The server is shutting down: release every hang and pause now."""
        self.closing.set()

    async def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the server starts shutting down meanwhile."""
        if seconds <= 0 or self.closing.is_set():
            return
        if seconds < 0.2:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closing.wait(), seconds)

    async def _hang(self, request: Request) -> None:
        """Wait for shutdown; give up (dropping the connection) once the client has left."""
        while not self.closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), 1.0)
            if await request.is_disconnected():
                raise DropConnection("the client left a hung request")

    def authorize(self, request: Request, given: str | None = None) -> None:
        if self._bearer is None:
            return
        if given is None:
            given = request.headers.get("authorization", "")
        if given != self._bearer:
            scheme, _, token = given.partition(" ")
            raise errors.bad_key(token.strip() if scheme.lower() == "bearer" else None)

    async def admit(
        self,
        request: Request,
        provider: str = "openai",
        check: Check | None = None,
        model: str | None = None,
    ) -> tuple[Faults, dict[str, str], float]:
        """Auth, hang, queued fault, rate limit and forced status; faults, headers, start.

        ``model`` is the target named by the path (deployment, Gemini or Bedrock model);
        otherwise the body's ``model`` decides which queued faults match.
        """
        started = time.perf_counter()
        body = await _json_or_none(request)
        self.last.keep(record(provider, request, body))
        wanted = _wanted_headers(request) | _metadata_directives(body)
        headers = provider_headers.ids(provider, wanted.get("x-request-id"))
        try:
            if check is None:
                self.authorize(request, wanted.get("authorization", ""))
            else:
                check(request)
        except ApiError as exc:
            exc.headers = headers | exc.headers
            raise
        faults = read_faults(wanted, self.settings)
        if faults.hang:
            self.stats.hangs += 1
            await self._hang(request)
            raise ApiError(503, "The server is shutting down.", headers=headers)
        if model is None and isinstance(body, dict) and isinstance(body.get("model"), str):
            model = body["model"]
        scripted = self.scripted.take(provider, model)
        if scripted is not None:
            faults = _merge(faults, scripted)
        admitted, limits = self.window.admit()
        headers |= provider_headers.limits(provider, limits)
        if not admitted:
            retry = self.window.retry_after()
            if provider not in NO_RETRY_HEADER:
                headers["retry-after"] = str(retry)
            if provider != "openai":
                raise ApiError(429, None, headers=headers | {"retry-after": str(retry)})
            name = model or "requests"
            raise errors.rate_limited(name, self.window.limit, retry, headers)
        if faults.status is not None:
            if scripted is not None:
                await self.pause(faults.ttft_ms / 1000)
            if faults.status == 429 or (scripted is not None and scripted.retry_after):
                headers["retry-after"] = str(faults.retry_after)
            if faults.status == 429 and provider in provider_headers.OPENAI_LIKE:
                headers |= {
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": f"{faults.retry_after}s",
                }
            raise ApiError(faults.status, headers=headers)
        return faults, headers, started

    async def parsed(self, request: Request) -> Any:
        """The request's JSON body (None when it is not JSON), parsed once."""
        return await _json_or_none(request)

    async def body(self, request: Request, headers: dict[str, str]) -> tuple[dict[str, Any], str]:
        """The JSON object body and its known model, or the 400/404 OpenAI would give."""
        body = await _json_or_none(request)
        if not isinstance(body, dict):
            raise ApiError(400, errors.JSON_HINT, headers=headers)
        model = body.get("model")
        if model is None or model == "":
            raise ApiError(400, "you must provide a model parameter", "model", headers=headers)
        if not isinstance(model, str):
            raise _with(errors.invalid_type("model", "a string", model), headers)
        if model not in self.models:
            raise _with(errors.model_not_found(model), headers)
        return body, model


def _wanted_headers(request: Request) -> dict[str, str]:
    """The headers the fake reads, in one pass over the raw list (Headers.get scans it)."""
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in request.scope["headers"]
        if name.startswith(b"x-fake-") or name in _READ
    }


_READ = frozenset((b"authorization", b"x-request-id"))


def _merge(faults: Faults, scripted: ScriptedFault) -> Faults:
    return dataclasses.replace(
        faults,
        status=scripted.status if scripted.status is not None else faults.status,
        retry_after=scripted.retry_after if scripted.retry_after is not None else 1,
        ttft_ms=faults.ttft_ms + scripted.latency_ms,
        drop=scripted.drop,
        after_chunks=scripted.after_chunks,
    )


def _with(error: ApiError, headers: dict[str, str]) -> ApiError:
    error.headers = headers
    return error


async def _json_or_none(request: Request) -> Any:
    """The parsed body (None when it is not JSON), parsed once per request."""
    if "parsed_body" not in request.scope:
        try:
            request.scope["parsed_body"] = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            request.scope["parsed_body"] = None
    return request.scope["parsed_body"]


def _metadata_directives(body: Any) -> dict[str, str]:
    """``"metadata": {"fake_status": "500"}`` means ``x-fake-status: 500``.

    A gateway forwards the body unchanged but (rightly) not arbitrary client headers, so
    tests that go through Tollgate put their fault directives here.
    """
    metadata = body.get("metadata") if isinstance(body, dict) else None
    if not isinstance(metadata, dict):
        return {}
    return {
        "x-fake-" + key[5:].replace("_", "-"): str(value)
        for key, value in metadata.items()
        if isinstance(key, str) and key.startswith("fake_")
    }
