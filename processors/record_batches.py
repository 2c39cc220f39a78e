"""A batch's records go to Kafka as one record batch per topic partition.

Faust sends each table write through its producer buffer, one ``send()`` per record
(aiokafka's per-record path: a future, an accumulator append and a sender wake-up each),
and its conductor stops delivering messages to every agent while that buffer holds more
than 100 records. A metering batch writes about one changelog record per event; under
load the buffer stayed full (``producer buffer full`` several times a second), the agents
sat waiting for messages that were already fetched, and the admission state fell seconds
behind with the worker's CPU not used up. Record batches cost a fraction per record and
never fill that buffer.

Delivery is not awaited here: Faust's commit flushes the producer (``producer.flush()``
waits for every batch in aiokafka's accumulator) before it commits the offsets of the
events that wrote them, as it does for its own changelog sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder

from schemas.partitioning import partition_for

OnSent = Callable[[int], None]
"""Called with the offset of a partition's last record once Kafka has it."""


class RecordBatches:
    """Records collected between ``send`` calls, per topic partition, in the order added."""

    def __init__(self, producer: Callable[[], AIOKafkaProducer]) -> None:
        self._producer = producer
        self._pending: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        self._on_sent: dict[tuple[str, int], OnSent] = {}
        self._partitions: dict[str, list[int]] = {}
        self.failed: BaseException | None = None
        """The first failed delivery (after the producer's own retries), raised by ``send``."""

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        on_sent: OnSent | None = None,
    ) -> None:
        self._pending.setdefault((topic, partition), []).append((key, value))
        if on_sent is not None:
            self._on_sent[topic, partition] = on_sent

    async def add_keyed(self, topic: str, key: bytes, value: bytes) -> None:
        """To the partition a keyed ``send`` would choose (murmur2 of the key, as Faust's
        and the Java client's default partitioner)."""
        known = self._partitions.get(topic)
        if known is None:
            known = sorted(await self._producer().partitions_for(topic))
            self._partitions[topic] = known
        self.add(topic, partition_for(key, known), key, value)

    def __len__(self) -> int:
        return sum(len(records) for records in self._pending.values())

    async def send(self) -> None:
        """Hands everything collected to the producer (it may wait for room in its buffer).

        Raises the failure of an earlier batch: the caller (an agent) then crashes and
        its worker restarts from the committed offsets instead of going on with a table
        whose changelog missed writes."""
        if self.failed is not None:
            raise self.failed
        pending, self._pending = self._pending, {}
        on_sent, self._on_sent = self._on_sent, {}
        producer = self._producer()
        for (topic, partition), records in pending.items():
            batches = _fill(producer, records)
            callback = on_sent.get((topic, partition))
            for index, (batch, count) in enumerate(batches):
                future = await producer.send_batch(batch, topic, partition=partition)
                last = index == len(batches) - 1
                future.add_done_callback(self._delivered(callback if last else None, count))

    def _delivered(
        self, callback: OnSent | None, count: int
    ) -> Callable[[asyncio.Future[object]], None]:
        def done(future: asyncio.Future[object]) -> None:
            if future.cancelled():
                return
            failure = future.exception()
            if failure is not None:
                self.failed = self.failed or failure
            elif callback is not None:
                callback(future.result().offset + count - 1)  # type: ignore[attr-defined]

        return done


def _fill(
    producer: AIOKafkaProducer, records: list[tuple[bytes | None, bytes | None]]
) -> list[tuple[BatchBuilder, int]]:
    """Batches of the producer's batch size (a larger record gets one of its own), each
    with its record count."""
    batches: list[tuple[BatchBuilder, int]] = []
    batch: BatchBuilder = producer.create_batch()
    count = 0
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:
            batches.append((batch, count))
            batch, count = producer.create_batch(), 0
            batch.append(key=key, value=value, timestamp=None)  # an empty batch takes any
        count += 1
    batch.close()
    batches.append((batch, count))
    return batches
