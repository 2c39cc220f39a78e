"""Stop Kafka and the processors mid-traffic, start them again: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from pathlib import Path

import pytest

from infra.kafka.broker import BrokerSettings, LocalKafka
from infra.topics import ensure_topics
from tests.harness import free_port, start_stack, write_config
from tests.integration.traffic import Served, keep_sending, wait_for_sql

pytestmark = pytest.mark.integration


async def test_kafka_and_worker_restart_mid_traffic(tmp_path: Path) -> None:
    broker = LocalKafka(
        BrokerSettings(home=tmp_path / "kafka", port=free_port(), controller_port=free_port())
    )
    await asyncio.to_thread(broker.start)
    await ensure_topics(broker.bootstrap_servers)
    config, path = write_config(tmp_path / "restart", broker.bootstrap_servers)
    stack = await asyncio.to_thread(start_stack, config, path)
    served, stop = Served(), asyncio.Event()
    try:
        traffic = asyncio.create_task(keep_sending(config, served, stop, lanes=6))
        await asyncio.sleep(2)
        await asyncio.to_thread(stack.stop_stage, "worker")
        await asyncio.to_thread(broker.stop)
        during_outage = served.requests
        await asyncio.sleep(3)  # the gateway keeps answering; events wait in its queue
        assert served.requests > during_outage, "the gateway stopped serving while Kafka was down"
        await asyncio.to_thread(broker.start)
        await asyncio.to_thread(stack.start_stage, "worker")
        await asyncio.sleep(2)
        stop.set()
        failures = await traffic
        assert failures == 0
        assert served.requests > 50

        tenant = config.keys[0].tenant
        expected = [
            [
                served.requests,
                served.requests,
                served.prompt_tokens,
                served.completion_tokens,
                served.cost,
            ]
        ]
        await wait_for_sql(
            config,
            "SELECT count(), uniqExact(request_id), sum(prompt_tokens), sum(completion_tokens), "
            f"toString(sum(cost)) FROM usage FINAL WHERE tenant = '{tenant}'",
            lambda rows: [[*rows[0][:-1], Decimal(rows[0][-1])]] == expected,
            wait_s=90,
        )
        # each request's events were logged once (a re-sent batch collapses on event id)
        rows = await wait_for_sql(
            config,
            "SELECT type, count(), uniqExact(request_id) FROM request_log FINAL "
            f"WHERE tenant = '{tenant}' GROUP BY type ORDER BY type",
            lambda r: len(r) == 2 and all(row[1] == served.requests for row in r),
        )
        assert all(row[1] == row[2] for row in rows)
        # what clients were answered is exactly what was billed
        billed = await wait_for_sql(
            config, f"SELECT request_id FROM usage FINAL WHERE tenant = '{tenant}'", lambda r: True
        )
        assert {row[0] for row in billed} == served.request_ids
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(stack.down)
        await asyncio.to_thread(broker.stop)
