"""The ClickHouse sink on real Kafka and real chDB."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from infra.kafka.broker import LocalKafka
from schemas.config import TollgateConfig
from schemas.events import RequestReceived, ResponseCompleted, UsageRecorded
from schemas.topics import DEAD_LETTER, REQUESTS, USAGE
from sinks.clickhouse.client import open_client
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.writer import ClickHouseSink
from sinks.query_server import NotReadOnlyError, check_read_only
from tests.harness import running_broker, write_config
from tests.kafka_io import collect, produce

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker of its own: the sink reads its topics from the start, so counts (dead
    letters, rows) must not include what other tests wrote."""
    with running_broker(tmp_path_factory.mktemp("sink-kafka")) as broker:
        yield broker


class FlakyClient:
    """Inserts the first table of a batch, then fails once: a crash in the middle."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.failures_left = 1

    def insert(self, table: str, rows: list[Any], column_names: list[str], **kw: Any) -> None:
        self.client.insert(table, rows, column_names=column_names, **kw)
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("ClickHouse went away mid-batch")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def _events(tenant: str, n: int) -> list[Any]:
    events: list[Any] = []
    for i in range(n):
        rid = f"{tenant}-r{i}"
        events.append(
            RequestReceived(
                request_id=rid,
                tenant=tenant,
                key_id="k",
                model="gpt-4o",
                endpoint="/v1/chat/completions",
                body={"n": i},
            )
        )
        events.append(
            ResponseCompleted(
                request_id=rid,
                tenant=tenant,
                key_id="k",
                provider="openai",
                model="gpt-4o",
                status=200,
                latency_ms=10.0 + i,
            )
        )
    return events


def _usage(tenant: str, n: int) -> list[UsageRecorded]:
    return [
        UsageRecorded(
            id=f"00000000-0000-7000-8000-{i:012d}",
            request_id=f"{tenant}-r{i}",
            tenant=tenant,
            key_id="k",
            provider="openai",
            model="gpt-4o",
            prompt_tokens=10 + i,
            completion_tokens=5,
            cost=f"0.0000{i + 1}7",
        )
        for i in range(n)
    ]


async def _run_sink(
    config: TollgateConfig, client: Any, until: Any, seconds: float = 60
) -> ClickHouseSink:
    executor = ThreadPoolExecutor(max_workers=1)
    sink = ClickHouseSink(config, client, executor)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    try:
        for _ in range(int(seconds * 10)):
            if until(sink):
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
        executor.shutdown()
    return sink


async def test_exactly_once_with_duplicates_dead_letters_and_a_failed_insert(
    own_kafka: LocalKafka, tmp_path: Path
) -> None:
    kafka = own_kafka
    config, _ = write_config(tmp_path / "sink", kafka.bootstrap_servers)
    tenant = config.keys[0].tenant
    log_events, usage = _events(tenant, 20), _usage(tenant, 20)
    garbage = (tenant.encode(), b"\x00 not an event")
    # every event twice: as a producer retry would deliver them
    await produce(kafka.bootstrap_servers, REQUESTS.name, [*log_events, garbage, *log_events])
    await produce(kafka.bootstrap_servers, USAGE.name, [*usage, *usage])

    client = open_client(config)
    try:
        migrate(client, config.clickhouse.database)
        flaky = FlakyClient(client)
        sink = await _run_sink(
            config, flaky, lambda s: s.stats.rows >= 60 and s.stats.duplicates >= 60
        )
        assert flaky.failures_left == 0 and sink.stats.insert_retries >= 1
        assert sink.stats.dead_lettered == 1

        db = config.clickhouse.database
        where = f"WHERE tenant = '{tenant}'"
        rows = client.query(
            f"SELECT count(), sum(cost), sum(total_tokens) FROM {db}.usage FINAL {where}"
        ).result_rows[0]
        expected_cost = sum(Decimal(u.cost) for u in usage)
        assert rows == (
            20,
            expected_cost,
            sum(u.prompt_tokens + u.completion_tokens for u in usage),
        )
        log_rows = client.query(
            f"SELECT type, count() FROM {db}.request_log FINAL {where} GROUP BY type ORDER BY type"
        ).result_rows
        assert log_rows == [("request.received", 20), ("response.completed", 20)]
        # the second copies never reached ClickHouse: no FINAL needed, and no rollup counts them
        raw = client.query(f"SELECT count() FROM {db}.usage {where}").result_rows
        rolled = client.query(
            f"SELECT sum(requests), sum(cost) FROM {db}.usage_hour {where}"
        ).result_rows
        assert raw == [(20,)] and rolled == [(20, expected_cost)]
        assert sink.stats.duplicates == 60

        # offsets were committed after the insert: a restarted sink writes nothing again
        again = await _run_sink(config, client, lambda s: s.stats.batches > 0, seconds=4)
        assert again.stats.rows == 0
    finally:
        client.close()

    dead = await collect(
        kafka.bootstrap_servers, DEAD_LETTER.name, lambda r: r.key == tenant.encode(), 1, linger=0
    )
    assert dead and dead[0].value == garbage[1]
    assert b"tollgate.requests/" in dict(dead[0].headers)["tollgate-source"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "  with x as (select 1) select * from x",
        "SHOW TABLES",
        "DESCRIBE usage",
        "SELECT ';' AS semicolon_in_a_string;",
    ],
)
def test_read_only_queries_pass(sql: str) -> None:
    assert check_read_only(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO usage VALUES (1)",
        "DROP TABLE usage",
        "ALTER TABLE usage DELETE WHERE 1",
        "SELECT 1; DROP TABLE usage",
        "OPTIMIZE TABLE usage FINAL",
    ],
)
def test_writes_are_refused(sql: str) -> None:
    with pytest.raises(NotReadOnlyError):
        check_read_only(sql)
