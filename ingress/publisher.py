"""Publishes events to Kafka without ever making a client wait on Kafka.

``publish`` appends to an in-memory queue and returns at once. One background task sends
the queue in order, in batches, with an idempotent producer. A batch with any failed send
is sent again whole (order per tenant is kept; the processors and sinks are idempotent, so
a repeat counts once). While Kafka is away the queue grows up to ``max_events``; past that,
new events are counted as dropped and reported by ``/health`` (a disk spool comes with the
ingress issue). On shutdown the queue is flushed for a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from schemas.events import Event

log = logging.getLogger("tollgate.ingress.publisher")
BATCH = 500


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes


class EventPublisher:
    def __init__(self, bootstrap_servers: str, max_events: int) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.max_events = max_events
        self._queue: deque[Outgoing] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None
        self._closing = False
        self.published = 0
        self.dropped = 0
        self.connected = False
        self.last_error: str | None = None

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def publish(self, topic: str, event: Event) -> None:
        if len(self._queue) >= self.max_events:
            self.dropped += 1
            log.error("event queue full (%d): dropped %s %s", self.max_events, event.TYPE, event.id)
            return
        self._queue.append(Outgoing(topic, event.tenant.encode(), event.encode()))
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-publisher")

    async def close(self, flush_s: float = 10.0) -> None:
        """Flush what is queued (up to ``flush_s``), then stop the producer."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, flush_s)
            except TimeoutError:
                log.error("shutdown: %d events not published within %.0f s", self.backlog, flush_s)
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self._stop_producer()

    async def _run(self) -> None:
        delay = 0.2
        while not (self._closing and not self._queue):
            try:
                producer = await self._ensure_producer()  # eagerly: /health tells the truth
                if not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                await self._send_batch(producer)
                delay = 0.2
            except Exception as exc:
                self.connected = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "publishing failed (%s); %d queued, retry in %.1f s",
                    self.last_error,
                    self.backlog,
                    delay,
                )
                await self._stop_producer()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                enable_idempotence=True,
                linger_ms=2,
                request_timeout_ms=10000,
                compression_type=None,
            )
            try:
                await producer.start()
            except Exception:
                await producer.stop()
                raise
            self._producer = producer
            self.connected = True
        return self._producer

    async def _send_batch(self, producer: AIOKafkaProducer) -> None:
        batch = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
        futures = [await producer.send(o.topic, o.value, key=o.key) for o in batch]
        await asyncio.gather(*futures)
        for _ in batch:
            self._queue.popleft()
        self.published += len(batch)
        self.connected = True

    async def _stop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            started = time.monotonic()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)
            log.debug("producer stopped in %.1f s", time.monotonic() - started)
