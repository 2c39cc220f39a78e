"""Paths → handlers. Logic lives in the modules the handlers come from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.anthropic_messages import MessagesService
from ingress.chat import ChatService
from ingress.embeddings import EmbeddingsService
from ingress.metrics import Metrics
from ingress.models import ModelsService

PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def routes(
    *,
    chat: ChatService,
    embeddings: EmbeddingsService,
    messages: MessagesService,
    models: ModelsService,
    metrics: Metrics,
    health: Callable[[bool], dict[str, Any]],
) -> list[Route]:
    async def health_endpoint(request: Request) -> Response:
        # 200 while the gateway can serve: with Kafka away it still answers and spools
        # events ("degraded"); the body says which. ?detail=1 adds providers and breakers.
        detail = request.query_params.get("detail") not in (None, "", "0", "false")
        return Response(orjson.dumps(health(detail)), 200, media_type="application/json")

    async def metrics_endpoint(_: Request) -> Response:
        return Response(metrics.render(), 200, media_type=PROMETHEUS)

    return [
        Route("/v1/chat/completions", chat.handle, methods=["POST"]),
        Route("/v1/embeddings", embeddings.handle, methods=["POST"]),
        Route("/v1/messages", messages.handle, methods=["POST"]),
        Route("/v1/models", models.list, methods=["GET"]),
        Route("/v1/models/{name:path}", models.get, methods=["GET"]),
        Route("/health", health_endpoint, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
