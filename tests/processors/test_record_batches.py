"""A metering batch's records go to Kafka as record batches: in the order added, on the
partition given (or the one a keyed send picks), the last offset reported once Kafka has
it, and a delivery Kafka refused raised by the next send."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from infra.kafka.broker import LocalKafka
from processors.record_batches import RecordBatches
from tests.kafka_io import collect, new_topic

pytestmark = pytest.mark.integration


async def test_records_land_in_order_and_the_last_offset_is_reported(kafka: LocalKafka) -> None:
    bootstrap = kafka.bootstrap_servers
    topic = await new_topic(bootstrap, "test-record-batches", 3)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=16 * 1024)
    await producer.start()
    reported: dict[int, list[int]] = {0: [], 2: []}
    try:
        batches = RecordBatches(lambda: producer)
        values = [f"value-{i}-{'x' * 1000}".encode() for i in range(40)]  # past one batch
        for i, value in enumerate(values):
            partition = 2 if i % 4 else 0
            batches.add(topic, partition, f"key-{i}".encode(), value, reported[partition].append)
        batches.add(topic, 1, b"tombstone", None)
        assert len(batches) == 41
        await batches.send()
        assert len(batches) == 0
        keys = [f"tenant-{i}".encode() for i in range(3)]
        for key in keys:
            await batches.add_keyed(topic, key, b"keyed")
        await batches.send()
        await producer.flush()
        by_send = {}
        for key in keys:
            by_send[key] = (await producer.send_and_wait(topic, b"probe", key=key)).partition
    finally:
        await producer.stop()

    stored = await collect(bootstrap, topic, lambda r: True, 41 + 3 + 3)
    for partition in (0, 2):
        kept = [r for r in sorted(stored, key=lambda r: r.offset) if r.partition == partition]
        wanted = [v for i, v in enumerate(values) if (2 if i % 4 else 0) == partition]
        assert [r.value for r in kept if r.value.startswith(b"value-")] == wanted
        # one report per send, with the offset of that partition's last record
        last = max(r.offset for r in kept if r.value.startswith(b"value-"))
        assert reported[partition] == [last]
    assert [r.value for r in stored if r.key == b"tombstone"] == [None]
    for key in keys:
        placed = {r.partition for r in stored if r.key == key}
        assert placed == {by_send[key]}


async def test_a_batch_kafka_refused_is_raised_by_the_next_send(kafka: LocalKafka) -> None:
    bootstrap = kafka.bootstrap_servers
    topic = await new_topic(bootstrap, "test-record-batches", 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        batches = RecordBatches(lambda: producer)
        reported: list[int] = []
        # the broker takes at most ~1 MB per batch (message.max.bytes)
        batches.add(topic, 0, b"big", b"x" * (2 * 1024 * 1024), reported.append)
        await batches.send()
        await producer.flush()
        assert batches.failed is not None
        assert reported == []
        batches.add(topic, 0, b"small", b"y")
        with pytest.raises(type(batches.failed)):
            await batches.send()
    finally:
        await producer.stop()
