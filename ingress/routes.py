"""Paths → handlers. Logic lives in the modules the handlers come from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.chat import ChatService


def routes(chat: ChatService, health: Callable[[], dict[str, Any]]) -> list[Route]:
    async def health_endpoint(_: Request) -> Response:
        # 200 while the gateway can serve: with Kafka away it still answers and queues events
        # ("degraded"); the body says which.
        return Response(orjson.dumps(health()), 200, media_type="application/json")

    return [
        Route("/v1/chat/completions", chat.handle, methods=["POST"]),
        Route("/health", health_endpoint, methods=["GET"]),
    ]
