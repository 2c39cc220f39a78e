"""Sends keyed records to Kafka as one record batch per topic partition.

aiokafka's per-record ``send`` costs a future, an accumulator append and a sender wake-up
for every record; measured on this machine with an idempotent producer, 84 µs of CPU per
record in batches of 16 (460-530 µs in pairs) against 15 µs (120 µs) through
``send_batch``. The ingress publishes two events per request, so this is a large part of
its own cost. Partitions are chosen as aiokafka (and the Java client) choose them for a
keyed record (``schemas.partitioning``), so a tenant's events land
where the processors expect them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder

from schemas.partitioning import partition_for

Record = tuple[str, bytes, bytes]
"""(topic, key, value)."""


async def send_batches(
    producer: AIOKafkaProducer, records: Sequence[Record]
) -> list[tuple[int, int]]:
    """(partition, offset) of each record, in the order given, once all are acknowledged.

    Raises what the producer raises; records in batches that were acknowledged before a
    failure may then be in Kafka too (readers dedupe on event id)."""
    by_partition: dict[tuple[str, int], list[int]] = {}
    partitions: dict[str, list[int]] = {}
    for index, (topic, key, _) in enumerate(records):
        known = partitions.get(topic)
        if known is None:
            known = partitions[topic] = sorted(await producer.partitions_for(topic))
        partition = partition_for(key, known)
        by_partition.setdefault((topic, partition), []).append(index)
    sends: list[tuple[asyncio.Future[object], int, list[int]]] = []
    for (topic, partition), indexes in by_partition.items():
        for batch, members in _fill(producer, records, indexes):
            future = await producer.send_batch(batch, topic, partition=partition)
            sends.append((future, partition, members))
    placed: list[tuple[int, int]] = [(-1, -1)] * len(records)
    acked = await asyncio.gather(*(future for future, _, _ in sends))
    for (_, partition, members), meta in zip(sends, acked, strict=True):
        base = meta.offset  # type: ignore[attr-defined]  # RecordMetadata of the batch
        for position, index in enumerate(members):
            placed[index] = (partition, base + position)
    return placed


def _fill(
    producer: AIOKafkaProducer, records: Sequence[Record], indexes: list[int]
) -> list[tuple[BatchBuilder, list[int]]]:
    """Record batches of the producer's batch size (a larger record gets one of its own)."""
    batches: list[tuple[BatchBuilder, list[int]]] = []
    batch: BatchBuilder = producer.create_batch()
    members: list[int] = []
    for index in indexes:
        _, key, value = records[index]
        if batch.append(key=key, value=value, timestamp=None) is None:
            batches.append((batch, members))
            batch, members = producer.create_batch(), []
            batch.append(key=key, value=value, timestamp=None)  # an empty batch takes any
        members.append(index)
    batch.close()
    batches.append((batch, members))
    return batches
