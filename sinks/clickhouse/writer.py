"""Kafka → ClickHouse in batches, exactly once.

Policy: a batch closes at ``batch_max_rows`` events or ``batch_max_ms`` after its first
event, whichever comes first. Its rows are inserted (one INSERT per table), and only then
are the offsets committed. A crash between insert and commit re-delivers the batch; the
tables are ReplacingMergeTree on event id, so the second copy collapses into the first.
A failing insert is retried with backoff and no new batch is fetched meanwhile: that is the
back-pressure, Kafka holds the backlog. Undecodable events go to the dead-letter topic with
the reason. Shutdown: the current batch finishes (insert and commit) before the loop exits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from clickhouse_connect.driver.client import Client

from schemas.config import TollgateConfig
from schemas.events import EventDecodeError, decode
from schemas.topics import DEAD_LETTER, REQUESTS, USAGE
from sinks.clickhouse.rows import COLUMNS, to_row

log = logging.getLogger("tollgate.sink")
Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


@dataclass
class SinkStats:
    batches: int = 0
    rows: int = 0
    dead_lettered: int = 0
    insert_retries: int = 0
    last_batch_rows: int = 0
    last_commit_ms: int = 0
    lag: dict[str, int] = field(default_factory=dict)


class ClickHouseSink:
    def __init__(self, config: TollgateConfig, client: Client, executor: Executor) -> None:
        self.config = config
        self.client = client
        self.executor = executor
        self.database = config.clickhouse.database
        self.stats = SinkStats()

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            REQUESTS.name,
            USAGE.name,
            bootstrap_servers=self.config.kafka.bootstrap_servers,
            group_id=self.config.sink.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.config.sink.batch_max_rows,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=self.config.kafka.bootstrap_servers, acks="all"
        )
        await _start_with_retry(consumer, stop, "sink consumer")
        await _start_with_retry(producer, stop, "dead-letter producer")
        try:
            while not stop.is_set():
                batch = await self._next_batch(consumer, stop)
                if batch:
                    await self._write(batch, producer, stop)
                    await consumer.commit({tp: msgs[-1].offset + 1 for tp, msgs in batch.items()})
                    self.stats.last_commit_ms = int(time.time() * 1000)
                    self._update_lag(consumer, batch)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _next_batch(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> Batch:
        limit = self.config.sink.batch_max_rows
        batch: Batch = defaultdict(list)
        count = 0
        deadline: float | None = None
        while count < limit and not stop.is_set():
            wait_ms = 200 if deadline is None else int((deadline - time.monotonic()) * 1000)
            if wait_ms <= 0:
                break
            fetched = await consumer.getmany(timeout_ms=wait_ms, max_records=limit - count)
            for tp, records in fetched.items():
                batch[tp].extend(records)
                count += len(records)
            if count and deadline is None:
                deadline = time.monotonic() + self.config.sink.batch_max_ms / 1000
        return dict(batch)

    async def _write(self, batch: Batch, producer: AIOKafkaProducer, stop: asyncio.Event) -> None:
        tables: dict[str, list[list[Any]]] = defaultdict(list)
        for records in batch.values():
            for record in records:
                try:
                    table, row = to_row(decode(record.value or b""), record.value or b"")
                except (EventDecodeError, ValueError, TypeError) as exc:
                    await self._dead_letter(producer, record, exc)
                    continue
                tables[table].append(row)
        delay = 0.5
        while True:
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self.executor, self._insert, tables
                )
                break
            except Exception as exc:
                if stop.is_set():
                    raise
                self.stats.insert_retries += 1
                log.warning("ClickHouse insert failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        rows = sum(len(r) for r in tables.values())
        self.stats.batches += 1
        self.stats.rows += rows
        self.stats.last_batch_rows = rows

    def _insert(self, tables: dict[str, list[list[Any]]]) -> None:
        for table, rows in tables.items():
            self.client.insert(f"{self.database}.{table}", rows, column_names=list(COLUMNS[table]))

    async def _dead_letter(
        self, producer: AIOKafkaProducer, record: ConsumerRecord[bytes, bytes], exc: Exception
    ) -> None:
        log.error(
            "dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc
        )
        headers = [
            ("tollgate-reason", str(exc).encode()[:1000]),
            ("tollgate-source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        await producer.send_and_wait(
            DEAD_LETTER.name, record.value, key=record.key, headers=headers
        )
        self.stats.dead_lettered += 1

    def _update_lag(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        for tp in batch:
            highwater = consumer.highwater(tp)
            if highwater is not None:
                self.stats.lag[f"{tp.topic}/{tp.partition}"] = highwater - (
                    batch[tp][-1].offset + 1
                )


async def _start_with_retry(client: Any, stop: asyncio.Event, what: str) -> None:
    """Kafka may still be starting (or restarting): keep trying instead of crashing."""
    delay = 0.5
    while True:
        try:
            await client.start()
            return
        except Exception as exc:
            if stop.is_set():
                raise
            log.warning("%s cannot reach Kafka yet (%s); retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
