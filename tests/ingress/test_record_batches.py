"""Events go to Kafka as one record batch per partition: each record lands on the
partition aiokafka's own ``send`` would pick for its key, at the offset reported for it."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer

from infra.kafka.broker import LocalKafka
from ingress.record_batches import send_batches
from schemas.topics import REQUESTS
from tests.kafka_io import collect, new_topic

pytestmark = pytest.mark.integration


async def test_each_record_lands_where_send_would_put_it_at_its_reported_offset(
    kafka: LocalKafka,
) -> None:
    run = uuid.uuid4().hex[:8]
    other = await new_topic(kafka.bootstrap_servers, "test-batches", 3)  # a second topic
    keys = [f"{run}-tenant-{i}".encode() for i in range(5)]
    records = [
        (REQUESTS.name if i % 4 else other, keys[i % 5], f"{run}-{i}".encode()) for i in range(60)
    ]
    records[7] = (REQUESTS.name, keys[2], b"x" * (300 * 1024))  # past one batch: a batch alone
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        enable_idempotence=True,
        max_batch_size=256 * 1024,
        max_request_size=1024 * 1024,
    )
    await producer.start()
    try:
        placed = await send_batches(producer, records)
        by_send = {}
        for key in keys:  # where aiokafka's per-record path puts the same key
            meta = await producer.send_and_wait(REQUESTS.name, b"probe", key=key)
            by_send[key] = meta.partition
    finally:
        await producer.stop()

    for (topic, key, _), (partition, _) in zip(records, placed, strict=True):
        if topic == REQUESTS.name:
            assert partition == by_send[key]
    mine = {r[1] for r in records}
    stored = await collect(
        kafka.bootstrap_servers, REQUESTS.name, lambda r: r.key in mine, 45 + 5
    ) + await collect(kafka.bootstrap_servers, other, lambda r: r.key in mine, 15)
    where = {(r.topic, r.partition, r.offset): r.value for r in stored}
    for (topic, _, value), (partition, offset) in zip(records, placed, strict=True):
        assert where[(topic, partition, offset)] == value
    # per key and topic, the order given is the order stored
    for key in keys:
        given = [v for t, k, v in records if k == key and t == REQUESTS.name]
        kept = [r.value for r in sorted(stored, key=lambda r: r.offset) if r.key == key]
        assert [v for v in kept if v != b"probe" and v in given] == given
