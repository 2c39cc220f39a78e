"""SIGKILL the sink process mid-traffic, several times: ClickHouse's tables and rollups end
up holding exactly what the fake upstream served (tokens) and the pricing implies (cost).

The kills land wherever they land (reading, writing rows, writing view parts, committing);
tests/sinks/test_sink_crash.py stages the worst point deterministically.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from decimal import Decimal
from pathlib import Path

import pytest

from infra.kafka.broker import LocalKafka
from tests.harness import start_stack, write_config
from tests.integration.traffic import Served, keep_sending, wait_for_sql

pytestmark = pytest.mark.integration


async def test_sink_killed_mid_traffic_counts_every_request_once(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    config, path = write_config(tmp_path / "sinkkill", kafka.bootstrap_servers)
    stack = await asyncio.to_thread(start_stack, config, path)
    served, stop = Served(), asyncio.Event()
    try:
        traffic = asyncio.create_task(
            keep_sending(
                config, served, stop, lanes=4, models=("gpt-4o-mini", "gpt-4o"), pause_s=0.005
            )
        )
        for pause in (1.3, 1.7, 2.1):
            await asyncio.sleep(pause)
            sink = stack.stage("sink").process
            assert sink is not None
            os.killpg(sink.pid, signal.SIGKILL)
            await asyncio.to_thread(sink.wait)
            await asyncio.to_thread(stack.start_stage, "sink")
        await asyncio.sleep(1)
        stop.set()
        assert await traffic == 0
        assert served.requests > 30

        tenant = config.keys[0].tenant
        tokens = served.prompt_tokens + served.completion_tokens
        expected = [served.requests, tokens, served.cost]

        def exact(rows: list[list[object]]) -> list[object]:
            return [int(str(rows[0][0])), int(str(rows[0][1])), Decimal(str(rows[0][2]))]

        for table in ("usage", "usage_minute", "usage_hour", "usage_day"):
            count = "count()" if table == "usage" else "sum(requests)"
            # no FINAL anywhere: no duplicate row may exist, in the table or its rollups
            await wait_for_sql(
                config,
                f"SELECT {count}, sum(prompt_tokens + completion_tokens), toString(sum(cost)) "
                f"FROM {table} WHERE tenant = '{tenant}'",
                lambda rows: exact(rows) == expected,
                wait_s=60,
            )
        rows = await wait_for_sql(
            config,
            "SELECT count(), uniqExact(event_id), uniqExact(request_id) FROM request_log "
            f"WHERE tenant = '{tenant}'",
            lambda r: int(r[0][2]) == served.requests,
        )
        assert [int(v) for v in rows[0]] == [2 * served.requests] * 2 + [served.requests]
        latency = await wait_for_sql(
            config,
            f"SELECT sum(responses) FROM latency_minute WHERE tenant = '{tenant}'",
            lambda r: int(r[0][0]) == served.requests,
        )
        assert int(latency[0][0]) == served.requests
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(stack.down)
