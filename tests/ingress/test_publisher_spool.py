"""The event publisher with its disk spool, against a dead address and the real broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.kafka.broker import LocalKafka
from ingress.publisher import EventPublisher, Outgoing
from ingress.spool import Spool
from schemas.events import RequestReceived, decode
from schemas.topics import REQUESTS
from tests.harness import free_port
from tests.kafka_io import collect

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


def _events(tenant: str, n: int) -> list[RequestReceived]:
    return [
        RequestReceived(
            request_id=f"r-{i}",
            tenant=tenant,
            key_id="k",
            endpoint="/v1/chat/completions",
            model="gpt-4o-mini",
            body={"i": i, "pad": "x" * 200},
        )
        for i in range(n)
    ]


def _segments(directory: Path) -> list[Path]:
    return list(directory.glob("*.seg"))


def _dead() -> str:
    return f"127.0.0.1:{free_port()}"


async def _until(condition: Callable[[], bool], wait_s: float = 30.0) -> None:
    deadline = time.monotonic() + wait_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _ids_on_kafka(bootstrap: str, tenant: str, expected: int) -> list[str]:
    records = await collect(bootstrap, REQUESTS.name, lambda r: r.key == tenant.encode(), expected)
    return [decode(r.value or b"").id for r in records]


def test_outgoing_round_trips_through_bytes() -> None:
    out = Outgoing("tollgate.requests", "tenant-ü".encode(), b'{"v":1}')
    assert Outgoing.unpack(out.pack()) == out


async def test_outage_spools_and_a_later_publisher_drains(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    tenant = f"spool-{uuid.uuid4().hex[:8]}"
    events = _events(tenant, 1200)
    down = EventPublisher(_dead(), max_events=10_000, spool_dir=tmp_path, spool_max_bytes=64 * MiB)
    down.start()
    for event in events[:600]:
        down.publish(REQUESTS.name, event)  # returns at once: no Kafka on the request path
    await _until(lambda: down.spool is not None and down.spool.pending == 600)
    assert not down.connected and down.last_error and down.spooled_bytes > 0
    assert down.backlog == 600 and down.dropped == 0
    for event in events[600:]:
        down.publish(REQUESTS.name, event)
    await down.close(flush_s=2)
    assert down.backlog == 1200 and down.published == 0 and down.spilled == 1200

    up = EventPublisher(
        kafka.bootstrap_servers, max_events=10_000, spool_dir=tmp_path, spool_max_bytes=64 * MiB
    )
    up.start()
    fresh = _events(tenant, 100)
    for event in fresh:
        up.publish(REQUESTS.name, event)
    await _until(lambda: up.backlog == 0 and up.spool is not None)
    assert up.connected and up.published == 1300 and up.spooled_bytes == 0
    await up.close()

    ids = await _ids_on_kafka(kafka.bootstrap_servers, tenant, 1300)
    assert set(ids) == {e.id for e in events + fresh}  # none lost (repeats would be allowed)
    # the spool drained first: every older event precedes the new ones
    assert ids.index(fresh[0].id) > max(ids.index(e.id) for e in events)
    assert _segments(tmp_path) == []


async def test_shutdown_with_kafka_down_persists_and_next_start_drains(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    tenant = f"close-{uuid.uuid4().hex[:8]}"
    events = _events(tenant, 300)
    down = EventPublisher(_dead(), max_events=10_000, spool_dir=tmp_path)
    down.start()
    for event in events:
        down.publish(REQUESTS.name, event)
    await down.close(flush_s=0.5)  # straight away: the events are still in memory
    assert down.spool is not None and down.spool.pending == 300 and down.dropped == 0
    assert _segments(tmp_path)

    again = EventPublisher(kafka.bootstrap_servers, max_events=10_000, spool_dir=tmp_path)
    again.start()
    await _until(lambda: again.spool is not None and again.backlog == 0)
    await again.close()
    ids = await _ids_on_kafka(kafka.bootstrap_servers, tenant, 300)
    assert set(ids) == {e.id for e in events}


async def test_spill_threshold_keeps_order_with_kafka_up(kafka: LocalKafka, tmp_path: Path) -> None:
    tenant = f"spill-{uuid.uuid4().hex[:8]}"
    events = _events(tenant, 2000)
    publisher = EventPublisher(
        kafka.bootstrap_servers, max_events=10_000, spool_dir=tmp_path, spill_at=50
    )
    publisher.start()
    await _until(lambda: publisher.connected)
    sent = 0
    for burst in [30, 300, 20, 20, 500, 10, 400, 25, 695]:  # some pass the threshold
        for event in events[sent : sent + burst]:
            publisher.publish(REQUESTS.name, event)
        sent += burst
        await asyncio.sleep(0.02)  # the spiller and the sender interleave with us
    assert sent == len(events)
    await _until(lambda: publisher.backlog == 0)
    await publisher.close()
    assert 0 < publisher.spilled < 2000
    ids = await _ids_on_kafka(kafka.bootstrap_servers, tenant, 2000)
    assert ids == [e.id for e in events]  # memory and disk together: one FIFO


async def test_both_bounds_full_drops_and_counts_never_blocks(tmp_path: Path) -> None:
    publisher = EventPublisher(_dead(), max_events=100, spool_dir=tmp_path, spool_max_bytes=MiB)
    publisher.start()
    events = _events("bounded", 200)
    await _until(lambda: publisher.spool is not None)
    started = time.monotonic()
    for _ in range(30):  # ~420 bytes each: a MiB of spool holds ~2500
        for event in events:
            publisher.publish(REQUESTS.name, event)
        await asyncio.sleep(0.1)
    assert time.monotonic() - started < 10
    await publisher.close(flush_s=0.5)
    assert publisher.spool is not None
    assert publisher.dropped > 0
    assert publisher.spool.size_bytes <= MiB
    assert publisher.backlog + publisher.dropped == 6000


async def test_a_spool_in_use_elsewhere_is_reported_and_memory_carries_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = Spool(tmp_path, MiB)  # another process has this directory
    publisher = EventPublisher(_dead(), max_events=1000, spool_dir=tmp_path)
    publisher.start()
    for event in _events("locked", 10):
        publisher.publish(REQUESTS.name, event)
    await _until(lambda: "in use by another process" in caplog.text)
    assert publisher.spool is None and publisher.backlog == 10
    await publisher.close(flush_s=0.5)
    assert publisher.dropped == 10  # counted, not silently lost
    holder.close()


async def test_an_event_kafka_would_refuse_is_dropped_and_the_rest_flow(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    tenant = f"huge-{uuid.uuid4().hex[:8]}"
    huge, *small = _events(tenant, 4)
    huge.body = {"pad": "x" * (2 * MiB)}  # past Kafka's message size: refused, never sent
    publisher = EventPublisher(kafka.bootstrap_servers, max_events=100, spool_dir=tmp_path)
    publisher.start()
    for event in (huge, *small):
        publisher.publish(REQUESTS.name, event)
    await _until(lambda: publisher.backlog == 0)
    await publisher.close()
    assert publisher.dropped == 1 and publisher.connected
    ids = await _ids_on_kafka(kafka.bootstrap_servers, tenant, 3)
    assert ids == [e.id for e in small]
