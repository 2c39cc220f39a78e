"""The fake upstream as a Starlette app: OpenAI's routes plus the ``/_fake`` control routes.

``create_app(settings)`` is all a caller needs; ``app.state.upstream`` holds the shared state
(stats, rate window) and its ``close()`` releases hung requests when a server shuts down.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from infra.fake_upstream import control, errors, wire
from infra.fake_upstream.chat import chat_completions
from infra.fake_upstream.embeddings import create_embeddings
from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.providers import table
from infra.fake_upstream.settings import FakeUpstreamSettings
from infra.fake_upstream.text import warm_up
from infra.fake_upstream.upstream import OPENAI_VERSION, Upstream

Handler = Callable[[Upstream, Request], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _error_response(exc: ApiError) -> Response:
    headers = {"openai-version": OPENAI_VERSION, **exc.headers}
    body = wire.error(exc.status, exc.message, exc.param, exc.code)
    return Response(body, exc.status, headers, "application/json")


def _openai(upstream: Upstream, handler: Handler) -> Endpoint:
    """An endpoint that answers an ``ApiError`` with OpenAI's error body, and counts it."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(upstream, request)
        except ApiError as exc:
            upstream.stats.answered(exc.status)
            return _error_response(exc)

    return endpoint


async def _models(upstream: Upstream, request: Request) -> Response:
    upstream.authorize(request)
    return Response(wire.model_list(upstream.settings.models), media_type="application/json")


async def _model(upstream: Upstream, request: Request) -> Response:
    upstream.authorize(request)
    name = request.path_params["name"]
    if name not in upstream.models:
        raise errors.model_not_found(name)
    return _json(wire.model_object(name))


def create_app(settings: FakeUpstreamSettings) -> Starlette:
    """The fake OpenAI upstream; serve it with ``infra.fake_upstream.server``."""
    upstream = Upstream(settings)
    warm_up(settings.models)

    async def health(_: Request) -> Response:
        return _json({"status": "ok"})

    async def not_found(request: Request) -> Response:
        message = (
            f"Invalid URL ({request.method} {request.url.path})"
            if request.url.path.startswith("/v1/")
            else "Not found."
        )
        return _error_response(ApiError(404, message))

    routes: list[BaseRoute] = [
        Route("/v1/chat/completions", _openai(upstream, chat_completions), methods=["POST"]),
        Route("/v1/embeddings", _openai(upstream, create_embeddings), methods=["POST"]),
        Route("/v1/models", _openai(upstream, _models), methods=["GET"]),
        Route("/v1/models/{name:path}", _openai(upstream, _model), methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        *control.routes(upstream),
        *table.routes(upstream),
    ]
    app = Starlette(routes=routes)
    app.router.default = _as_asgi(not_found)
    app.state.upstream = upstream
    return app


def _as_asgi(endpoint: Endpoint) -> ASGIApp:
    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive))
        await response(scope, receive, send)

    return asgi
