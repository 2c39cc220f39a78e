"""The sink writes the processors' guard.verdict events into ``verdicts`` beside the inline
verdicts, through the same exactly-once path (a verdict delivered twice is stored once)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from infra.kafka.broker import LocalKafka
from processors.guards.verdicts import verdict_id
from schemas.events import GuardVerdict, RequestReceived
from schemas.topics import REQUESTS, VERDICTS
from sinks.clickhouse.client import open_client
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.writer import ClickHouseSink
from tests.harness import write_config
from tests.kafka_io import produce

pytestmark = pytest.mark.integration
TS = 1_767_225_600_000


def _stream(tenant: str, rid: str, source: str) -> GuardVerdict:
    return GuardVerdict(
        id=verdict_id(rid, source),
        ts=TS,
        request_id=rid,
        tenant=tenant,
        key_id="k1",
        model="gpt-4o",
        source=source,
        entities=[
            {"type": "EMAIL", "score": 1.0, "count": 2},
            {"type": "PHONE", "score": 0.4, "count": 1},
        ],
        action="warn",
        inline_entities={"EMAIL": 2},
        injection_score=0.25 if source == "request" else 0.0,
        analyzed_chars=20_000,
        truncated=source == "response",
    )


def _received(tenant: str, rid: str) -> RequestReceived:
    return RequestReceived(
        ts=TS,
        request_id=rid,
        tenant=tenant,
        key_id="k1",
        endpoint="/v1/chat/completions",
        model="gpt-4o",
        guard={"action": "warn", "entities": {"EMAIL": 2}, "injection_score": 0.25},
    )


async def test_stream_verdicts_land_once_next_to_the_inline_ones(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    config, _ = write_config(tmp_path / "verdicts", kafka.bootstrap_servers)
    tenant = config.keys[0].tenant
    stream = [_stream(tenant, "r1", "request"), _stream(tenant, "r1", "response")]
    # a marker after each topic's events, on the same partition (keyed by tenant): once both
    # markers are stored, so is everything before them on either topic
    requests = [_received(tenant, "r1"), _received(tenant, "r-marker")]
    await produce(kafka.bootstrap_servers, REQUESTS.name, [*requests])
    marker = _stream(tenant, "r-marker", "request")
    await produce(kafka.bootstrap_servers, VERDICTS.name, [*stream, *stream, marker])  # redelivered

    client = open_client(config)
    executor = ThreadPoolExecutor(max_workers=1)
    try:
        migrate(client, config.clickhouse.database)
        sink = ClickHouseSink(config, client, executor)
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        db = config.clickhouse.database
        marked = f"SELECT uniq(source) FROM {db}.verdicts WHERE request_id = 'r-marker'"
        for _ in range(1200):  # the shared broker holds every earlier test's events too
            if client.query(marked).result_rows[0][0] == 2:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await task

        rows = client.query(
            "SELECT stage, source, action, entities, scores, injection_score, analyzed_chars, "
            f"truncated, toString(event_id) FROM {db}.verdicts WHERE tenant = '{tenant}' "
            "AND request_id = 'r1' ORDER BY source, stage"
        ).result_rows
    finally:
        client.close()
        executor.shutdown()
    assert len(rows) == 3  # no FINAL: the second copies never reached ClickHouse
    assert rows[0][:3] == ("input", "guard.verdict", "warn")
    assert rows[0][3] == {"EMAIL": 2, "PHONE": 1}
    assert rows[0][4] == {"EMAIL": 1.0, "PHONE": pytest.approx(0.4)}
    assert rows[0][5] == pytest.approx(0.25) and rows[0][6:8] == (20_000, False)
    assert rows[0][8] == verdict_id("r1", "request")
    assert rows[1][:2] == ("output", "guard.verdict") and rows[1][7] is True
    assert rows[2][:2] == ("input", "request.received") and rows[2][4] == {}
