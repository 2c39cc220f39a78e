"""Builds the ingress ASGI app from a config: no globals, everything passed in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from ingress.admin import KeyAdmin, admin_routes
from ingress.anthropic_messages import MessagesService
from ingress.auth import KeyStore
from ingress.chat import ChatService
from ingress.embeddings import EmbeddingsService
from ingress.errors import install_handlers
from ingress.gateway import Gateway
from ingress.health import event_state, health_view
from ingress.key_registry import KeyRegistry
from ingress.metrics import LiveState, Metrics
from ingress.models import ModelsService
from ingress.publisher import EventPublisher
from ingress.reload import watch_config
from ingress.routes import routes
from ingress.routing.health import check_forever
from ingress.runtime import Runtime
from ingress.spool import worker_spool_dir
from schemas.config import TollgateConfig

log = logging.getLogger(__name__)
KEYS_CATCH_UP_S = 5.0


def create_app(config: TollgateConfig, config_path: Path | None = None, worker: int = 0) -> FastAPI:
    """``worker`` numbers this process among ``ingress.workers`` (its own event spool)."""
    metrics = Metrics()
    runtime = Runtime(config, lambda kind, target, _: metrics.attempt(kind, target.deployment.id))
    bootstrap = config.kafka.bootstrap_servers
    publisher = EventPublisher(
        bootstrap,
        config.ingress.event_queue_max,
        spool_dir=worker_spool_dir(config.spool_dir, config.ingress.port, worker),
        spool_max_bytes=config.ingress.spool_max_bytes,
    )
    registry = KeyRegistry(bootstrap)
    gateway = Gateway(
        KeyStore(config.keys, registry), publisher, metrics, runtime, config.ingress.max_body_bytes
    )
    current = {"config": config}
    admin = KeyAdmin(bootstrap, registry, lambda: current["config"].admin.digest)
    metrics.watch(LiveState(lambda: gateway.runtime.deployments, lambda: event_state(publisher)))

    def apply(new: TollgateConfig) -> None:
        old = gateway.runtime
        gateway.runtime = Runtime(new, old.dispatcher.observe)
        gateway.keys = KeyStore(new.keys, registry)
        current["config"] = new
        old.retire()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        publisher.start()
        registry.start()
        try:
            # keys created through the admin API must work from the first request; with
            # Kafka away, serve static keys rather than not at all
            async with asyncio.timeout(KEYS_CATCH_UP_S):
                await registry.caught_up.wait()
        except TimeoutError:
            log.warning("serving before the key registry caught up: %s", registry.last_error)
        interval = config.routing.health_check_interval_s
        tasks = [asyncio.create_task(check_forever(lambda: gateway.runtime.deployments, interval))]
        if config_path is not None:
            tasks.append(asyncio.create_task(watch_config(config_path, apply)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await admin.close()
            await registry.stop()
            await publisher.close()
            await gateway.runtime.close()

    app = FastAPI(
        title="Tollgate",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # /metrics is Prometheus, owned here; FastAPI's own OpenTelemetry layer costs CPU on
        # every request for nothing unless someone configures an exporter
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_handlers(app)
    app.router.routes.extend(
        routes(
            chat=ChatService(gateway),
            embeddings=EmbeddingsService(gateway),
            messages=MessagesService(gateway),
            models=ModelsService(gateway),
            metrics=metrics,
            health=health_view(gateway, publisher, registry, worker),
        )
    )
    app.router.routes.extend(admin_routes(admin))
    app.state.publisher = publisher
    app.state.gateway = gateway
    return app
