"""A sink that dies mid-batch, on real Kafka and real chDB: after a restart every table and
every rollup holds each event exactly once.

The worst crash point is staged: the usage rows have landed but their materialized views
have not (the views are detached while the first sink runs, as if the process died between
the source part and the view parts). Re-reading alone would then find the usage rows stored
and leave the rollups short; the ledger's re-sent plan must fill exactly the missing blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from infra.kafka.broker import LocalKafka
from schemas.config import TollgateConfig
from schemas.events import RequestReceived, ResponseCompleted, UsageRecorded
from schemas.topics import REQUESTS, USAGE
from sinks.clickhouse.client import open_client
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.writer import ClickHouseSink
from tests.harness import running_broker, write_config
from tests.kafka_io import produce

pytestmark = pytest.mark.integration

VIEWS = ("usage_minute_mv", "usage_hour_mv", "usage_day_mv", "latency_minute_mv")


class SimulatedCrash(BaseException):
    """Not an Exception: the sink's retry loop must not catch it, as with a real crash."""


class CrashAfterUsage:
    """Writes the usage rows of the first batch that has some, then dies."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.crashed = False

    def insert(self, table: str, rows: list[Any], **kw: Any) -> None:
        self.client.insert(table, rows, **kw)
        if table.endswith(".usage") and not self.crashed:
            self.crashed = True
            raise SimulatedCrash

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    with running_broker(tmp_path_factory.mktemp("crash-kafka")) as broker:
        yield broker


def _traffic(tenant: str, n: int) -> tuple[list[Any], list[UsageRecorded]]:
    log: list[Any] = []
    usage: list[UsageRecorded] = []
    for i in range(n):
        rid = f"{tenant}-r{i}"
        log.append(
            RequestReceived(
                request_id=rid,
                tenant=tenant,
                key_id="k",
                model="gpt-4o",
                endpoint="/v1/chat/completions",
                body={"messages": [{"role": "user", "content": f"q{i}"}]},
                guard={"action": "allow", "entities": {"EMAIL": i % 2}, "injection_score": 0.1},
            )
        )
        log.append(
            ResponseCompleted(
                request_id=rid,
                tenant=tenant,
                key_id="k",
                provider="openai",
                model="gpt-4o",
                status=200,
                latency_ms=100.0 + i,
                outputs=[f"answer {i}"],
            )
        )
        usage.append(
            UsageRecorded(
                id=f"00000000-0000-7000-8000-{i:012d}",
                request_id=rid,
                tenant=tenant,
                key_id="k",
                provider="openai",
                model="gpt-4o",
                prompt_tokens=100 + i,
                completion_tokens=7,
                cached_tokens=40,
                cost=str(Decimal("0.00012") * (i + 1)),
                price_ref="gpt-4o@2024-10-01",
            )
        )
    return log, usage


async def _run(config: TollgateConfig, client: Any, until: Any, seconds: float = 60) -> Any:
    executor = ThreadPoolExecutor(max_workers=1)
    sink = ClickHouseSink(config, client, executor)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    try:
        for _ in range(int(seconds * 10)):
            if task.done() or until(sink):
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        with contextlib.suppress(SimulatedCrash):
            await task
        executor.shutdown()
    return sink


async def test_crash_between_rows_and_views_then_restart_counts_once(
    own_kafka: LocalKafka, tmp_path: Path
) -> None:
    config, _ = write_config(tmp_path / "crash", own_kafka.bootstrap_servers)
    tenant, n = config.keys[0].tenant, 30
    log, usage = _traffic(tenant, n)
    # a producer retry delivers some events twice, at later offsets
    await produce(own_kafka.bootstrap_servers, REQUESTS.name, [*log, *log[:10]])
    await produce(own_kafka.bootstrap_servers, USAGE.name, [*usage, *usage[:5]])
    db = config.clickhouse.database
    client = open_client(config)
    try:
        migrate(client, db)
        for view in VIEWS:
            client.command(f"DETACH TABLE {db}.{view}")
        crashing = CrashAfterUsage(client)
        first = await _run(config, crashing, lambda s: False)
        assert crashing.crashed and first.stats.batches == 0  # died before its done mark
        assert client.query(f"SELECT count() FROM {db}.usage").result_rows[0][0] > 0
        for view in VIEWS:
            client.command(f"ATTACH TABLE {db}.{view}")

        second = await _run(config, client, lambda s: s.stats.replayed and s.stats.rows >= 120)
        assert second.stats.replayed == 1

        where = f"WHERE tenant = '{tenant}'"

        def one(sql: str) -> tuple[Any, ...]:
            return tuple(client.query(sql).result_rows[0])

        cost = sum(Decimal(u.cost) for u in usage)
        tokens = sum(u.prompt_tokens + u.completion_tokens for u in usage)
        # no FINAL: not one duplicate row reached any table
        assert one(f"SELECT count(), sum(cost) FROM {db}.usage {where}") == (n, cost)
        assert one(f"SELECT count(), uniqExact(event_id) FROM {db}.request_log {where}") == (
            2 * n,
            2 * n,
        )
        assert one(f"SELECT count() FROM {db}.bodies {where}") == (2 * n,)
        assert one(f"SELECT count(), sum(entities['EMAIL']) FROM {db}.verdicts {where}") == (
            n,
            n // 2,
        )
        savings = Decimal(40 * n) * (Decimal("2.50") - Decimal("1.25")) / 1_000_000
        for table in ("usage_minute", "usage_hour", "usage_day"):
            assert one(
                f"SELECT sum(requests), sum(prompt_tokens + completion_tokens), sum(cost), "
                f"sum(cache_savings) FROM {db}.{table} {where}"
            ) == (n, tokens, cost, savings), table
        assert one(f"SELECT sum(responses) FROM {db}.latency_minute {where}") == (n,)
        p50 = one(f"SELECT quantileTDigestMerge(0.5)(latency) FROM {db}.latency_minute {where}")
        assert 110 <= p50[0] <= 120

        # and a third start finds nothing left to do
        third = await _run(config, client, lambda s: False, seconds=4)
        assert third.stats.replayed == 0 and third.stats.rows == 0
        assert one(f"SELECT sum(requests) FROM {db}.usage_hour {where}") == (n,)
    finally:
        client.close()
