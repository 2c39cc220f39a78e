"""Builds the ingress ASGI app from a config: no globals, everything passed in."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from ingress.admin import KeyAdmin, admin_routes
from ingress.admission.controller import Admission, build_admission
from ingress.admission.heartbeat import Heartbeat
from ingress.anthropic_messages import MessagesService
from ingress.auth import KeyStore
from ingress.chat import ChatService
from ingress.embeddings import EmbeddingsService
from ingress.errors import install_handlers
from ingress.fast_lane import FastLaneApp
from ingress.gateway import Gateway
from ingress.health import event_state, health_view
from ingress.key_registry import KeyRegistry
from ingress.metrics import LiveState, Metrics
from ingress.models import ModelsService
from ingress.publisher import EventPublisher
from ingress.reload import watch_config
from ingress.routes import model_endpoints, routes
from ingress.routing.health import check_forever
from ingress.runtime import Runtime
from ingress.spool import worker_spool_dir
from ingress.topic_follower import TopicFollower
from schemas.config import TollgateConfig
from schemas.tokens import load_encodings

log = logging.getLogger(__name__)
KEYS_CATCH_UP_S = 5.0
YOUNG_COLLECTION_EVERY = 20_000
"""Container allocations (less those freed) between two young-generation collections in an
ingress process; Python's default is 700. A request allocates a few hundred, so by default
a collection ran every request or two and walked the live objects of all ~16 in flight. At
20,000, side by side under load: 8-18 µs less CPU a request in each of five pairs, the p99
unchanged."""


async def read_topics(followers: list[TopicFollower]) -> None:
    """Keys created through the admin API must work from the first request, and budgets
    count from the first; with Kafka away, serve rather than not at all."""
    for follower in followers:
        follower.start()
    for follower in followers:
        try:
            async with asyncio.timeout(KEYS_CATCH_UP_S):
                await follower.caught_up.wait()
        except TimeoutError:
            log.warning("serving before %s was read: %s", follower.topic, follower.last_error)


async def warm_up(followers: list[TopicFollower], freeze_heap: bool) -> None:
    """Everything the first request needs, loaded before it: the followed topics, and the
    tokenizers (a few hundred ms each to build).

    What is loaded then lives as long as the process; with ``freeze_heap`` (when the
    ingress owns its process) it is moved out of the collector's sight, so a full
    collection no longer walks it. Measured under load: 70-85 ms stalls every ~1.5 s, the
    p99 tail, and ~2 ms once frozen. The young generation is then collected less often
    (``YOUNG_COLLECTION_EVERY``)."""
    await asyncio.gather(read_topics(followers), asyncio.to_thread(load_encodings))
    if freeze_heap:
        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])


def create_app(
    config: TollgateConfig,
    config_path: Path | None = None,
    worker: int = 0,
    *,
    freeze_heap: bool = False,
) -> FastAPI:
    """``worker`` numbers this process among ``ingress.workers`` (its own event spool);
    ``freeze_heap`` when the process is the ingress's alone (``warm_up``)."""
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
    heartbeat = Heartbeat(publisher)
    admission = build_admission(
        config, bootstrap, metrics.admission_lag.observe, heartbeat.replica, metrics.share_waited
    )
    view = admission.view
    metrics.admission_age.set_function(lambda: min(view.age_ms() / 1000, 1e9))
    metrics.admission_replicas.set_function(lambda: view.live_replicas(heartbeat.replica))
    gateway = Gateway(
        KeyStore(config.keys, registry),
        publisher,
        metrics,
        runtime,
        config.ingress.max_body_bytes,
        admission=admission,
    )
    current = {"config": config}
    admin = KeyAdmin(bootstrap, registry, lambda: current["config"].admin.digest)
    metrics.watch(LiveState(lambda: gateway.runtime.deployments, lambda: event_state(publisher)))

    def apply(new: TollgateConfig) -> None:
        old = gateway.runtime
        gateway.runtime = Runtime(new, old.dispatcher.observe)
        gateway.keys = KeyStore(new.keys, registry)
        gateway.admission = Admission(new, view, admission.local, heartbeat.replica)
        if gateway.admission.enabled:  # a rule needs the state, and peers need to know us
            if view.task is None:
                view.start()
            heartbeat.start()
        current["config"] = new
        old.retire()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        publisher.start()
        await warm_up([registry, view] if gateway.admission.enabled else [registry], freeze_heap)
        if gateway.admission.enabled:
            heartbeat.start()
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
            # settle first: answers still being counted publish their events
            closers = (gateway.settle, admin.close, registry.stop, view.stop, heartbeat.stop)
            for close in (*closers, publisher.close, gateway.runtime.close):
                await close()

    model_calls = model_endpoints(
        ChatService(gateway), EmbeddingsService(gateway), MessagesService(gateway)
    )
    app = FastLaneApp(
        model_calls,
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
    paths = routes(
        model_calls=model_calls,
        models=ModelsService(gateway),
        metrics=metrics,
        health=health_view(gateway, publisher, registry, worker),
    )
    app.router.routes.extend([*paths, *admin_routes(admin)])
    app.state.publisher, app.state.gateway = publisher, gateway
    return app
