"""Reading and writing the real topics from tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.events import Event, MeterProgress, MeterState, decode
from schemas.topics import ADMISSION


async def new_topic(bootstrap: str, prefix: str, partitions: int) -> str:
    """A topic of its own for one test (a unique name), created on the broker."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


async def produce(bootstrap: str, topic: str, items: list[Event | tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for item in items:
            if isinstance(item, Event):
                await producer.send(topic, item.encode(), key=item.tenant.encode())
            else:
                await producer.send(topic, item[1], key=item[0])
        await producer.flush()
    finally:
        await producer.stop()


async def collect(
    bootstrap: str,
    topic: str,
    keep: Callable[[ConsumerRecord[bytes, bytes]], bool],
    expected: int,
    *,
    wait_s: float = 60.0,
    linger: float = 2.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Records that pass ``keep``, read from the start until ``expected`` arrived (then
    ``linger`` seconds more, so a duplicate has time to show up) or ``wait_s``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            found.extend(r for records in batch.values() for r in records if keep(r))
            if len(found) >= expected:
                deadline = min(deadline, time.monotonic() + linger)
                expected = 1 << 62
        return found
    finally:
        await consumer.stop()


async def settle(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def latest_meter_states(bootstrap: str, meter: str, wait_s: float = 3.0) -> list[MeterState]:
    """The newest published share of ``meter`` per partition, from ``tollgate.admission``."""
    records = await collect(
        bootstrap,
        ADMISSION.name,
        lambda r: r.key is not None and r.key.decode().startswith(meter + "#"),
        expected=1 << 30,
        wait_s=wait_s,
    )
    latest: dict[int, MeterState] = {}
    for record in records:
        state = decode(record.value)
        assert isinstance(state, MeterState)
        latest[state.partition] = state
    return list(latest.values())


async def watch_progress(bootstrap: str) -> AIOKafkaConsumer:
    """A consumer of the progress marks published from now on (stop it when done)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    partition = TopicPartition(ADMISSION.name, 0)
    consumer.assign([partition])
    await consumer.seek_to_end(partition)
    return consumer


async def await_progress(
    consumer: AIOKafkaConsumer, wanted: dict[int, int], wait_s: float
) -> float:
    """Monotonic time at which the processors' progress covered offset ``wanted[p]`` of
    every partition ``p`` of the request log (marks read by ``watch_progress``)."""
    missing = dict(wanted)
    deadline = time.monotonic() + wait_s
    while missing:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the processors did not reach partitions {sorted(missing)}")
        for records in (await consumer.getmany(timeout_ms=200)).values():
            for record in records:
                if record.key is None or not record.key.startswith(b"progress#"):
                    continue
                mark = decode(record.value)
                assert isinstance(mark, MeterProgress)
                if mark.offset >= missing.get(mark.partition, 1 << 62):
                    del missing[mark.partition]
    return time.monotonic()
