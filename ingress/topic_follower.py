"""Reads one single-partition compacted topic into memory and keeps following it.

The ingress keeps two such copies: gateway keys (``tollgate.keys``) and the processors'
meter states (``tollgate.admission``). A background aiokafka consumer with no consumer
group reads the partition from the beginning and hands each record to ``apply``;
``caught_up`` is set once the records present at start are applied, so a replica can
wait for a complete view before serving. When Kafka goes away what was read stays; the
consumer reconnects and resumes at the next offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

log = logging.getLogger("tollgate.ingress.follower")


class TopicFollower:
    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.caught_up = asyncio.Event()
        """Set once everything on the topic at start has been applied."""
        self.position = 0
        """The next offset to read: every record before it is applied."""
        self.last_error: str | None = None
        self._advanced = asyncio.Condition()
        self.task: asyncio.Task[None] | None = None

    def apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        raise NotImplementedError

    def on_caught_up(self) -> None:
        """Called once, when the records present at start are applied."""

    async def wait_applied(self, offset: int, timeout_s: float) -> bool:
        """Whether the record at ``offset`` was applied within ``timeout_s``."""
        async with self._advanced:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._advanced.wait_for(lambda: self.position > offset)
            except TimeoutError:
                return False
            return True

    def start(self) -> None:
        self.task = asyncio.create_task(self._follow_forever(), name=f"follow {self.topic}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _follow_forever(self) -> None:
        delay = 0.5
        while True:
            started = time.monotonic()
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if time.monotonic() - started > 60:
                    delay = 0.5  # it had been working: retry soon
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("reading %s failed (%s); retry in %.1f s", self.topic, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        try:
            if self.topic not in await consumer.topics():
                raise LookupError(
                    f"topic {self.topic} does not exist; `tollgate up` creates it "
                    "(infra.topics.ensure_topics)"
                )
            partition = TopicPartition(self.topic, 0)
            consumer.assign([partition])
            consumer.seek(partition, self.position)  # 0 the first time; after a reconnect, on
            end = (await consumer.end_offsets([partition]))[partition]
            self.last_error = None
            while True:
                if not self.caught_up.is_set() and self.position >= end:
                    self.on_caught_up()
                    self.caught_up.set()
                batch = await consumer.getmany(partition, timeout_ms=1000)
                for record in batch.get(partition, []):
                    self.apply(record)
                position = max(self.position, await consumer.position(partition))
                if position != self.position:
                    async with self._advanced:
                        self.position = position
                        self._advanced.notify_all()
        finally:
            await consumer.stop()
