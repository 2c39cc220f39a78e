"""The model endpoints served as plain ASGI, in front of FastAPI's middleware and router.

Every other path goes through FastAPI. These are the ones every token passes, and the
layers FastAPI puts around a handler (server-error, telemetry and exception middleware,
router, exit stack, each wrapping ``send``) cost them CPU on every request for nothing
they need: a handler here raises only ``GatewayError`` (mapped in ``ingress.errors``) or
a bug, answered the same way the FastAPI handlers answer it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ingress.errors import GatewayError, error_response, unexpected_response

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]


class FastLaneApp(FastAPI):
    """FastAPI, except that ``POST`` to a path in ``fast_lane`` goes straight to its
    handler."""

    def __init__(self, fast_lane: Mapping[str, Handler], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fast_lane = fast_lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.fast_lane.get(scope["path"])
            if handler is not None:
                scope["app"] = self
                await serve(handler, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def serve(handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
    started = False

    async def sending(message: Message) -> None:
        nonlocal started
        started = True
        await send(message)

    request = Request(scope, receive, send)
    try:
        try:
            response = await handler(request)
        except GatewayError as exc:
            response = error_response(exc, getattr(request.state, "request_id", None))
        await response(scope, receive, sending)
    except Exception:
        log.exception("unexpected error serving %s", scope["path"])
        if started:
            raise  # the answer began: the server can only close the connection
        await unexpected_response(getattr(request.state, "request_id", None))(scope, receive, send)
