"""Builds the Faust app: one factory, domains register their agents and tables on it."""

from __future__ import annotations

import faust

from processors.usage import agent as usage
from schemas import codec
from schemas.config import TollgateConfig
from schemas.pricing import build_price_book
from schemas.topics import REQUESTS


def broker_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap_servers.split(","))


def create_app(config: TollgateConfig) -> faust.App:
    codec.register()
    settings = config.processors
    app = faust.App(
        settings.app_id,
        broker=broker_url(config.kafka.bootstrap_servers),
        store=settings.store,
        datadir=str(config.processors_dir),
        autodiscover=False,
        topic_partitions=REQUESTS.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
        table_standby_replicas=0,
    )
    usage.register(app, build_price_book(config.prices()))
    return app
