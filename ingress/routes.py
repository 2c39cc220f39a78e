"""Paths → handlers. Logic lives in the modules the handlers come from.

The model endpoints (``model_endpoints``) are served by ``ingress.fast_lane`` ahead of
FastAPI; their routes here answer the other methods (405) and keep the path list whole."""

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
from ingress.fast_lane import Handler
from ingress.metrics import Metrics
from ingress.models import ModelsService

PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def model_endpoints(
    chat: ChatService, embeddings: EmbeddingsService, messages: MessagesService
) -> dict[str, Handler]:
    """The ``POST`` paths every model call takes."""
    return {
        "/v1/chat/completions": chat.handle,
        "/v1/embeddings": embeddings.handle,
        "/v1/messages": messages.handle,
    }


def routes(
    *,
    model_calls: dict[str, Handler],
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
        *(Route(path, handler, methods=["POST"]) for path, handler in model_calls.items()),
        Route("/v1/models", models.list, methods=["GET"]),
        Route("/v1/models/{name:path}", models.get, methods=["GET"]),
        Route("/health", health_endpoint, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
