"""Builds the ingress ASGI app from a config: no globals, everything passed in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from ingress.auth import KeyStore
from ingress.chat import ChatService
from ingress.errors import install_handlers
from ingress.providers.openai_compatible import OpenAICompatible
from ingress.publisher import EventPublisher
from ingress.routes import routes
from schemas.config import TollgateConfig


def create_app(config: TollgateConfig) -> FastAPI:
    upstream = config.upstream
    api_key = upstream.api_key.get_secret_value() if upstream.api_key else None
    provider = OpenAICompatible(
        upstream.name, upstream.base_url, api_key, config.ingress.upstream_timeout_s
    )
    publisher = EventPublisher(config.kafka.bootstrap_servers, config.ingress.event_queue_max)
    chat = ChatService(KeyStore(config.keys), provider, publisher, config.ingress.max_body_bytes)

    def health() -> dict[str, Any]:
        degraded = publisher.dropped > 0 or not publisher.connected
        return {
            "status": "degraded" if degraded else "ok",
            "events": {
                "kafka_connected": publisher.connected,
                "backlog": publisher.backlog,
                "published": publisher.published,
                "dropped": publisher.dropped,
                "last_error": publisher.last_error,
            },
        }

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        publisher.start()
        try:
            yield
        finally:
            await publisher.close()
            await provider.close()

    app = FastAPI(
        title="Tollgate", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    install_handlers(app)
    app.router.routes.extend(routes(chat, health))
    app.state.publisher = publisher
    return app
