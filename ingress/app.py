"""Builds the ingress ASGI app from a config: no globals, everything passed in."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from ingress.anthropic_messages import MessagesService
from ingress.auth import KeyStore
from ingress.chat import ChatService
from ingress.embeddings import EmbeddingsService
from ingress.errors import install_handlers
from ingress.gateway import Gateway
from ingress.metrics import LiveState, Metrics
from ingress.models import ModelsService
from ingress.publisher import EventPublisher
from ingress.reload import watch_config
from ingress.routes import routes
from ingress.routing.health import check_forever
from ingress.runtime import Runtime
from schemas.config import TollgateConfig


def create_app(config: TollgateConfig, config_path: Path | None = None, worker: int = 0) -> FastAPI:
    """``worker`` numbers this process among ``ingress.workers`` (its own event spool)."""
    metrics = Metrics()
    runtime = Runtime(config, lambda kind, target, _: metrics.attempt(kind, target.deployment.id))
    publisher = EventPublisher(config.kafka.bootstrap_servers, config.ingress.event_queue_max)
    gateway = Gateway(
        KeyStore(config.keys), publisher, metrics, runtime, config.ingress.max_body_bytes
    )

    def events() -> dict[str, Any]:
        return {
            "kafka_connected": publisher.connected,
            "backlog": publisher.backlog,
            "published": publisher.published,
            "dropped": publisher.dropped,
            "last_error": publisher.last_error,
        }

    metrics.watch(LiveState(lambda: gateway.runtime.deployments, events))

    def health(detail: bool) -> dict[str, Any]:
        degraded = publisher.dropped > 0 or not publisher.connected
        body: dict[str, Any] = {"status": "degraded" if degraded else "ok", "events": events()}
        if detail:
            body["worker"] = {"index": worker, "pid": os.getpid()}
            body["deployments"] = [
                {
                    "id": d.id,
                    "model": d.settings.model,
                    "provider": d.provider.name,
                    "kind": d.provider.settings.kind,
                    "breaker": d.breaker.state.value,
                    "healthy": d.healthy,
                    "in_flight": d.bulkhead.in_flight,
                    "queued": d.bulkhead.waiting,
                    "latency_ewma_ms": d.latency_ewma_ms,
                }
                for d in gateway.runtime.deployments
            ]
        return body

    def apply(new: TollgateConfig) -> None:
        old = gateway.runtime
        gateway.runtime = Runtime(new, old.dispatcher._observe)
        gateway.keys = KeyStore(new.keys)
        old.retire()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        publisher.start()
        tasks = [
            asyncio.create_task(
                check_forever(
                    lambda: gateway.runtime.deployments, config.routing.health_check_interval_s
                )
            )
        ]
        if config_path is not None:
            tasks.append(asyncio.create_task(watch_config(config_path, apply)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await publisher.close()
            await gateway.runtime.close()

    app = FastAPI(
        title="Tollgate", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    install_handlers(app)
    app.router.routes.extend(
        routes(
            chat=ChatService(gateway),
            embeddings=EmbeddingsService(gateway),
            messages=MessagesService(gateway),
            models=ModelsService(gateway),
            metrics=metrics,
            health=health,
        )
    )
    app.state.publisher = publisher
    app.state.gateway = gateway
    return app
