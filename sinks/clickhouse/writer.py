"""Kafka → ClickHouse in batches, exactly once, materialized views included.

Policy, in order, per batch:

1. A batch closes at ``batch_max_rows`` records or ``batch_max_ms`` after its first record,
   whichever comes first. Undecodable records go to the dead-letter topic with the reason.
2. Events ClickHouse already holds (the same event id at another offset: a producer's
   retry, a recomputed usage event) are left out, so views never see an event twice.
3. The plan (offset ranges, left-out records) goes to ``sink_batches``; then one INSERT per
   table, each with the insert token ``<batch>:<table>``; then the plan's done mark; then
   the Kafka commit. A failed write is retried whole, with backoff: the same tokens make the
   blocks that already landed no-ops.
4. After a crash or a rebalance, each newly assigned partition first re-sends unfinished
   plans from the same records (same rows, same tokens), then continues after the last
   done batch or the committed offset, whichever is later.

Back-pressure: nothing new is fetched while a batch is being written or retried, so a slow
or absent ClickHouse leaves the backlog in Kafka (the lag metric shows it) and the batches
grow to ``batch_max_rows`` once it is back. Shutdown: the current batch finishes (insert and
commit) before the loop exits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError
from clickhouse_connect.driver.client import Client

from schemas.config import TollgateConfig
from schemas.events import Event, EventDecodeError, decode, new_event_id
from schemas.pricing import load_catalog
from schemas.topics import ALERTS, DEAD_LETTER, EXPERIMENTS, REQUESTS, USAGE, VERDICTS
from sinks.clickhouse.ledger import Ledger, Plan, Position, stored_event_ids
from sinks.clickhouse.metrics import SinkMetrics
from sinks.clickhouse.rows import COLUMNS, REPLAY_RESULTS, REQUEST_LOG, RowBuilder
from sinks.clickhouse.rows import USAGE as USAGE_TABLE
from sinks.clickhouse.rows import VERDICTS as VERDICTS_TABLE

log = logging.getLogger("tollgate.sink")
Record: TypeAlias = ConsumerRecord[bytes, bytes]
Batch: TypeAlias = dict[TopicPartition, list[Record]]
Tables: TypeAlias = dict[str, list[list[Any]]]
TOPICS = (REQUESTS.name, USAGE.name, ALERTS.name, EXPERIMENTS.name, VERDICTS.name)


@dataclass
class SinkStats:
    batches: int = 0
    rows: int = 0
    dead_lettered: int = 0
    insert_retries: int = 0
    duplicates: int = 0
    replayed: int = 0
    last_batch_rows: int = 0
    last_commit_ms: int = 0
    lag: dict[str, int] = field(default_factory=dict)


@dataclass
class _Decoded:
    record: Record
    event: Event
    rows: list[tuple[str, list[Any]]]


class ClickHouseSink:
    def __init__(
        self,
        config: TollgateConfig,
        client: Client,
        executor: Executor,
        metrics: SinkMetrics | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.executor = executor
        self.database = config.clickhouse.database
        self.ledger = Ledger(client, self.database)
        # config entries after the catalog's: the same ref from the config wins, as in pricing
        prices = [*load_catalog(), *config.prices()]
        self.builder = RowBuilder(config.clickhouse.body_ttl_days, prices)
        self.metrics = metrics or SinkMetrics()
        self.stats = SinkStats()
        self._written: dict[TopicPartition, int] = {}
        """Next offset per partition, as written to ClickHouse (for the lag)."""

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
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
        consumer.subscribe(list(TOPICS), listener=_Resume(self, consumer, stop))
        try:
            while not stop.is_set():
                batch = await self._next_batch(consumer, stop)
                if batch:
                    await self._write(batch, producer, stop)
                    await self._commit(consumer, batch)
                self._update_lag(consumer)
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
        return {tp: records for tp, records in batch.items() if records}

    async def _write(self, batch: Batch, producer: AIOKafkaProducer, stop: asyncio.Event) -> None:
        decoded: list[_Decoded] = []
        for _, records in sorted(batch.items()):
            for record in records:
                try:
                    event = decode(record.value or b"")
                    rows = self.builder.rows(event, record.value or b"")
                except (EventDecodeError, ValueError, TypeError, KeyError) as exc:
                    await self._dead_letter(producer, record, exc)
                    continue
                decoded.append(_Decoded(record, event, rows))
        skipped = await self._in_executor(self._already_stored, decoded)
        plan = Plan(
            token=new_event_id(),
            ranges=tuple(
                (tp.topic, tp.partition, records[0].offset, records[-1].offset)
                for tp, records in sorted(batch.items())
            ),
            skipped=frozenset(skipped),
        )
        self.stats.duplicates += len(skipped)
        self.metrics.duplicates.inc(len(skipped))
        self.metrics.batch_records.observe(sum(len(r) for r in batch.values()))
        await self._write_plan(plan, _tables(decoded, plan.skipped), stop)

    def _already_stored(self, decoded: list[_Decoded]) -> set[tuple[str, int, int]]:
        """Records to leave out: their event is in ClickHouse, or earlier in this batch."""
        by_table: dict[str, list[_Decoded]] = defaultdict(list)
        for item in decoded:
            table = item.rows[0][0] if item.rows else ""
            if table in (REQUEST_LOG, USAGE_TABLE, REPLAY_RESULTS, VERDICTS_TABLE):
                by_table[table].append(item)
        skipped: set[tuple[str, int, int]] = set()
        for table, items in by_table.items():
            stored = stored_event_ids(
                self.client, f"{self.database}.{table}", [i.event for i in items]
            )
            seen: set[str] = set()
            for item in items:
                key = str(item.event.id).lower()
                if key in stored or key in seen:
                    r = item.record
                    skipped.add((r.topic, r.partition, r.offset))
                seen.add(key)
        return skipped

    async def _write_plan(self, plan: Plan, tables: Tables, stop: asyncio.Event) -> None:
        started = time.monotonic()
        delay = 0.5
        while True:
            try:
                await self._in_executor(self._insert, plan, tables)
                break
            except Exception as exc:
                if stop.is_set():
                    raise
                self.stats.insert_retries += 1
                self.metrics.insert_retries.inc()
                log.warning("ClickHouse insert failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self.metrics.insert_seconds.observe(time.monotonic() - started)
        rows = sum(len(r) for r in tables.values())
        self.stats.batches += 1
        self.stats.rows += rows
        self.stats.last_batch_rows = rows
        for table, table_rows in tables.items():
            self.metrics.rows.labels(table).inc(len(table_rows))

    def _insert(self, plan: Plan, tables: Tables) -> None:
        """Plan, rows, done mark: every step is safe to repeat with the same plan."""
        self.ledger.plan(plan)
        for table, rows in tables.items():
            self.client.insert(
                f"{self.database}.{table}",
                rows,
                column_names=list(COLUMNS[table]),
                settings={"insert_deduplication_token": f"{plan.token}:{table}"},
            )
        self.ledger.done(plan)

    async def _commit(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        self._written.update(offsets)
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # the rows and the ledger's done mark are in: a new owner continues after them
            log.warning("offset commit failed after a written batch (%s); the ledger has it", exc)
            return
        self.stats.last_commit_ms = int(time.time() * 1000)

    async def resume(
        self, assigned: set[TopicPartition], stop: asyncio.Event
    ) -> dict[Position, int]:
        """Re-send unfinished plans touching these partitions; where each continues."""
        positions = {(tp.topic, tp.partition) for tp in assigned}
        for plan in await self._in_executor(self.ledger.unfinished):
            if plan.touches(positions):
                log.info("re-sending unfinished batch %s %s", plan.token, plan.ranges)
                records = await _fetch_ranges(self.config.kafka.bootstrap_servers, plan)
                decoded = []
                for record in records:
                    try:
                        event = decode(record.value or b"")
                        decoded.append(
                            _Decoded(record, event, self.builder.rows(event, record.value or b""))
                        )
                    except (EventDecodeError, ValueError, TypeError, KeyError):
                        continue  # dead-lettered when the batch was first read
                await self._write_plan(plan, _tables(decoded, plan.skipped), stop)
                self.stats.replayed += 1
                self.metrics.replayed.inc()
        return {
            position: offset
            for position, offset in (await self._in_executor(self.ledger.next_offsets)).items()
            if position in positions
        }

    async def _in_executor(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _dead_letter(
        self, producer: AIOKafkaProducer, record: Record, exc: Exception
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
        self.metrics.dead_letters.inc()

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            written = self._written.get(tp)
            if highwater is None or written is None:
                continue
            lag = max(highwater - written, 0)
            self.stats.lag[f"{tp.topic}/{tp.partition}"] = lag
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)


def _tables(decoded: list[_Decoded], skipped: frozenset[tuple[str, int, int]]) -> Tables:
    """Rows per table, in record order: a re-sent plan yields the very same INSERTs."""
    tables: Tables = defaultdict(list)
    for item in decoded:
        r = item.record
        if (r.topic, r.partition, r.offset) in skipped:
            continue
        for table, row in item.rows:
            tables[table].append(row)
    return dict(tables)


class _Resume(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment: finish what a crashed owner left, then seek past what is written."""

    def __init__(self, sink: ClickHouseSink, consumer: AIOKafkaConsumer, stop: asyncio.Event):
        self.sink = sink
        self.consumer = consumer
        self.stop = stop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if not assigned:
            return
        delay = 0.5
        while True:  # fetching before the resume is done could skip or repeat a batch
            try:
                after = await self.sink.resume(assigned, self.stop)
                break
            except Exception as exc:
                if self.stop.is_set():
                    raise
                log.warning("cannot resume %d partitions yet (%s); retrying", len(assigned), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        for tp in assigned:
            offset = after.get((tp.topic, tp.partition))
            if offset is None:
                continue
            committed = await self.consumer.committed(tp)
            if committed is None or committed < offset:
                self.consumer.seek(tp, offset)
            self.sink._written[tp] = max(offset, committed or 0)


async def _fetch_ranges(bootstrap_servers: str, plan: Plan) -> list[Record]:
    """The records of a plan's ranges, in the order the batch held them."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        wanted = {TopicPartition(t, p): (first, last) for t, p, first, last in plan.ranges}
        consumer.assign(list(wanted))
        for tp, (first, _) in wanted.items():
            consumer.seek(tp, first)
        got: dict[TopicPartition, list[Record]] = defaultdict(list)
        pending = set(wanted)
        while pending:
            fetched = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, records in fetched.items():
                first, last = wanted[tp]
                got[tp].extend(r for r in records if first <= r.offset <= last)
            for tp in list(pending):
                if await consumer.position(tp) > wanted[tp][1]:
                    pending.discard(tp)
                    consumer.pause(tp)
        return [record for tp in sorted(wanted) for record in got[tp]]
    finally:
        await consumer.stop()


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
            delay = min(delay * 2, 10.0)
