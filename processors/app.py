"""Builds the Faust app: one factory, domains register their agents and tables on it."""

from __future__ import annotations

from typing import Literal

import faust
from mode.supervisors import CrashingSupervisor

from processors.alerts import agent as alerts
from processors.guards import agent as guards
from processors.kafka_transport import use_fetch_wait
from processors.metering import agent as metering
from processors.metering.ledger import Rules
from schemas import codec
from schemas.config import TollgateConfig
from schemas.pricing import build_price_book
from schemas.topics import REQUESTS, TopicSpec


def broker_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap_servers.split(","))


Role = Literal["metering", "guards"]
"""Two workers: metering (usage, meters, alerts, guard escalation), whose lag is the
admission lag, and guards (Presidio), whose CPU must not add to it."""


def create_app(config: TollgateConfig, role: Role = "metering") -> faust.App:
    codec.register()
    settings = config.processors
    guards_role = role == "guards"
    app = faust.App(
        f"{settings.app_id}-guards" if guards_role else settings.app_id,
        broker=broker_url(config.kafka.bootstrap_servers),
        store=settings.store,
        datadir=str(config.processors_dir / "guards" if guards_role else config.processors_dir),
        autodiscover=False,
        topic_partitions=REQUESTS.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
        table_standby_replicas=0,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 5,
        # An agent that crashes stops the worker: a dead agent in a live process would stall
        # silently; a stopped worker is restarted and resumes from committed offsets.
        agent_supervisor=CrashingSupervisor,
    )
    use_fetch_wait(app, settings.fetch_max_wait_ms)
    if guards_role:
        guards.register_analysis(app, config.guards.analysis)
        return app
    rules = Rules(config.budgets, config.rate_limits, config.alerts)
    interval_s = config.admission.publish_interval_ms / 1000
    metering.register(app, build_price_book(config.prices()), rules, interval_s)
    alerts.register(app, config.budgets, config.alerts)
    if config.guards.escalation is not None:
        guards.register_escalation(app, config.guards.escalation)
    return app


def changelog_topics(app: faust.App) -> tuple[TopicSpec, ...]:
    """The tables' changelog topics, for infra to create before the worker starts.

    Faust creates them itself, but its metadata cache can report a just-created changelog
    with 0 partitions and crash the first table write (PartitionsMismatch).
    """
    return tuple(
        TopicSpec(
            table.changelog_topic_name,
            table.partitions or REQUESTS.partitions,
            retention_ms=0,
            key="table key",
            compacted=True,
        )
        for table in app.tables.values()
    )
