"""Publishes events to Kafka without ever making a client wait on Kafka.

``publish`` appends to an in-memory queue and returns at once: no I/O on the request path.
Two background tasks do the rest:

1. The **sender** sends in order, in batches, with an idempotent producer: first whatever
   waits in the disk spool (it is older), then the memory queue. A batch with any failed
   send is sent again whole; the processors and sinks are idempotent on event id, so a
   repeat counts once (at-least-once).
2. The **spiller** moves the memory queue to the disk spool (``ingress.spool``, in a
   thread) while Kafka is unreachable, when the queue passes ``spill_at`` events, and at
   shutdown when older events are already on disk. So everything on disk is older than
   everything in memory, and a spool found at start is drained before anything new.

Order: one FIFO per ingress process. The one exception: a memory batch whose send fails
just as the spiller moves the events behind it to disk goes back to the front of the
memory queue, so it is sent after those (at most one batch, at the start of an outage).

Bounds: the memory queue holds ``max_events``, the spool ``spool_max_bytes``. When both
are full, new events are dropped and counted (``dropped``); nothing ever blocks.

Shutdown (``close``): the sender keeps going for up to ``flush_s`` if Kafka is up; then
everything still in memory goes to the spool, which is fsynced; the next start drains it.
What was only in memory when the process was killed is lost: the spool covers outages and
orderly stops, not ``kill -9``.

Without a ``spool_dir`` the publisher keeps events in memory only (the older behaviour).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaProducer

from ingress.record_batches import send_batches
from ingress.spool import Spool
from schemas.events import Event

log = logging.getLogger("tollgate.ingress.publisher")
BATCH = 500
MAX_EVENT_BYTES = 1_000_000
"""Below the producer's request size and the broker's message size (1 MiB and ~1 MB by
default): a larger record is refused, and the sender would retry it forever."""
SPILL_CHUNK = 10_000
SPILL_TICK_S = 0.5
SPOOL_RETRY_S = 10.0
_PACKED = struct.Struct("<HI")


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes
    acked: Callable[[int, int], None] | None = field(default=None, compare=False)
    """Told the partition and offset once Kafka has the event (not kept in the spool)."""

    def pack(self) -> bytes:
        topic = self.topic.encode()
        return _PACKED.pack(len(topic), len(self.key)) + topic + self.key + self.value

    @classmethod
    def unpack(cls, raw: bytes) -> Outgoing:
        topic_len, key_len = _PACKED.unpack_from(raw)
        start = _PACKED.size
        topic = raw[start : start + topic_len].decode()
        key = raw[start + topic_len : start + topic_len + key_len]
        if len(key) != key_len:
            raise ValueError("spooled record shorter than its header says")
        return cls(topic, key, raw[start + topic_len + key_len :])


def _append(spool: Spool, events: list[Outgoing]) -> int:
    return spool.append([o.pack() for o in events])


class EventPublisher:
    def __init__(
        self,
        bootstrap_servers: str,
        max_events: int,
        spool_dir: Path | None = None,
        spool_max_bytes: int = 1024**3,
        *,
        spill_at: int | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.max_events = max_events
        self.spool_dir = spool_dir
        self.spool_max_bytes = spool_max_bytes
        self.spill_at = spill_at or max(1, max_events // 4)
        self.spool: Spool | None = None
        self.published = 0
        self.dropped = 0
        self.spilled = 0
        """Events written to the spool since start (a counter for metrics)."""
        self.connected = False
        self.last_error: str | None = None
        self._queue: deque[Outgoing] = deque()
        self._inflight: list[Outgoing] = []
        self._wakeup = asyncio.Event()
        self._spill_wakeup = asyncio.Event()
        self._spool_tried = asyncio.Event()
        self._closing_event = asyncio.Event()
        self._order = asyncio.Lock()  # the spiller's write vs. the sender's choice of source
        self._sender: asyncio.Task[None] | None = None
        self._spiller: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None
        self._closing = False
        self._stopping = False
        self._kafka_down = False
        self._spool_opened_at = -SPOOL_RETRY_S
        self._spool_full_logged = False

    @property
    def backlog(self) -> int:
        """Events not yet in Kafka: in memory, in flight and on disk."""
        spooled = self.spool.pending if self.spool is not None else 0
        return len(self._queue) + len(self._inflight) + spooled

    @property
    def spooled_bytes(self) -> int:
        return self.spool.size_bytes if self.spool is not None else 0

    def publish(
        self,
        topic: str,
        event: Event,
        acked: Callable[[int, int], None] | None = None,
        key: bytes | None = None,
    ) -> None:
        """Queue ``event`` keyed by its tenant (or ``key``); never waits on Kafka."""
        if len(self._queue) >= self.max_events:
            self.dropped += 1
            log.error("event queue full (%d): dropped %s %s", self.max_events, event.TYPE, event.id)
            return
        key = event.tenant.encode() if key is None else key
        value = event.encode()
        if len(value) > MAX_EVENT_BYTES:  # Kafka would refuse it, and it would block the rest
            self.dropped += 1
            log.error(
                "%s %s is %d bytes, past the %d Kafka takes: dropped (the gateway leaves large "
                "bodies out of events, so this is a bug: please report it)",
                event.TYPE,
                event.id,
                len(value),
                MAX_EVENT_BYTES,
            )
            return
        self._queue.append(Outgoing(topic, key, value, acked))
        self._wakeup.set()
        if len(self._queue) >= self.spill_at:
            self._spill_wakeup.set()

    def start(self) -> None:
        self._sender = asyncio.create_task(self._send_forever(), name="event-publisher")
        if self.spool_dir is None:
            self._spool_tried.set()
        else:
            self._spiller = asyncio.create_task(self._spill_forever(), name="event-spiller")

    async def close(self, flush_s: float = 10.0) -> None:
        """Send what Kafka takes within ``flush_s``, spool the rest, stop the producer."""
        self._closing = True
        self._wakeup.set()
        self._spill_wakeup.set()
        self._closing_event.set()
        if self._sender is not None:
            done, _ = await asyncio.wait({self._sender}, timeout=flush_s)
            if not done:
                log.warning("shutdown: Kafka took too long; %d events left over", self.backlog)
                self._sender.cancel()
                done, _ = await asyncio.wait({self._sender}, timeout=5)
                if not done:
                    log.error("shutdown: the event sender did not stop")
        self._stopping = True
        self._spill_wakeup.set()
        if self._spiller is not None:
            await self._spiller
        if self._queue and self.spool is not None:
            await self._spill(everything=True)
        if self._queue:
            self.dropped += len(self._queue)
            log.error("shutdown: %d events lost (Kafka away, no spool room)", len(self._queue))
            self._queue.clear()
        if self.spool is not None:
            await asyncio.to_thread(self.spool.close)
            if self.spool.pending:
                log.warning(
                    "shutdown: %d events (%d bytes) wait in %s for the next start",
                    self.spool.pending,
                    self.spool.size_bytes,
                    self.spool_dir,
                )
        await self._stop_producer()

    # -- the sender -----------------------------------------------------------------------

    def _spooled(self) -> int:
        return self.spool.pending if self.spool is not None else 0

    async def _send_forever(self) -> None:
        await self._spool_tried.wait()  # what waits on disk is older: it goes first
        delay = 0.2
        while True:
            if self._closing and not self._queue and (not self._spooled() or self._kafka_down):
                return
            try:
                producer = await self._ensure_producer()  # eagerly: /health tells the truth
                if self._spooled():
                    await self._send_spooled(producer)
                elif self._queue:
                    await self._send_memory(producer)
                else:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                delay = 0.2
            except Exception as exc:
                self._down(exc, delay)
                await self._stop_producer()
                if self._closing and self.spool is not None:
                    return  # the rest goes to disk; the next start sends it
                await self._pause(delay)
                delay = min(delay * 2, 5.0)

    async def _pause(self, delay: float) -> None:
        """Back off before retrying Kafka; a shutdown starting meanwhile ends the pause."""
        if self._closing:
            await asyncio.sleep(delay)  # no spool: keep trying until close gives up
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._closing_event.wait()

    def _down(self, exc: Exception, delay: float) -> None:
        if not self._kafka_down and self.spool is not None:
            log.warning("Kafka unreachable: events go to the spool at %s", self.spool_dir)
        self._kafka_down = True
        self.connected = False
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._spill_wakeup.set()
        log.warning(
            "publishing failed (%s); %d queued, retry in %.1f s",
            self.last_error,
            self.backlog,
            delay,
        )

    def _up(self, sent: int) -> None:
        self.published += sent
        self.connected = True
        if self._kafka_down:
            log.warning("Kafka reachable again; %d events to send", self.backlog)
        self._kafka_down = False

    async def _send_memory(self, producer: AIOKafkaProducer) -> None:
        async with self._order:
            if self._spooled():
                return  # the spiller just moved older events to disk: those first
            batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
        self._inflight = batch
        try:
            await self._send(producer, batch)
        except BaseException:
            self._queue.extendleft(reversed(batch))
            raise
        finally:
            self._inflight = []
        self._up(len(batch))

    async def _send_spooled(self, producer: AIOKafkaProducer) -> None:
        spool = self.spool
        assert spool is not None
        batch = await asyncio.to_thread(spool.read, BATCH)
        outgoing: list[Outgoing] = []
        for raw in batch.records:
            try:
                outgoing.append(Outgoing.unpack(raw))
            except (ValueError, UnicodeDecodeError, struct.error) as exc:
                self.dropped += 1
                log.error("spool: unreadable event skipped (%s)", exc)
        await self._send(producer, outgoing)
        await asyncio.to_thread(spool.ack, batch)
        self._up(len(outgoing))
        if not spool.pending:
            log.info("spool drained")

    async def _send(self, producer: AIOKafkaProducer, batch: list[Outgoing]) -> None:
        placed = await send_batches(producer, [(o.topic, o.key, o.value) for o in batch])
        for outgoing, (partition, offset) in zip(batch, placed, strict=True):
            if outgoing.acked is not None:
                try:
                    outgoing.acked(partition, offset)
                except Exception:  # a listener's bug must not resend the batch
                    log.exception("acknowledgement listener failed")

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                enable_idempotence=True,
                linger_ms=2,
                max_batch_size=256 * 1024,  # a batch of events per partition and request
                request_timeout_ms=10000,
                compression_type=None,
            )
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
            self.connected = True
        return self._producer

    async def _stop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            started = time.monotonic()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await producer.stop()
            log.debug("producer stopped in %.1f s", time.monotonic() - started)

    # -- the spiller ----------------------------------------------------------------------

    async def _spill_forever(self) -> None:
        while not self._stopping:
            if self.spool is None and time.monotonic() - self._spool_opened_at >= SPOOL_RETRY_S:
                await self._open_spool()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SPILL_TICK_S):
                    await self._spill_wakeup.wait()
            self._spill_wakeup.clear()
            if self._queue and self.spool is not None and self._should_spill():
                await self._spill()

    async def _open_spool(self) -> None:
        assert self.spool_dir is not None
        self._spool_opened_at = time.monotonic()
        try:
            self.spool = await asyncio.to_thread(Spool, self.spool_dir, self.spool_max_bytes)
        except Exception as exc:
            self.last_error = f"spool: {type(exc).__name__}: {exc}"
            log.error("cannot open the event spool (%s); retrying in %.0f s", exc, SPOOL_RETRY_S)
        finally:
            self._spool_tried.set()
        self._wakeup.set()

    def _should_spill(self) -> bool:
        return (
            self._kafka_down
            or len(self._queue) >= self.spill_at
            or (self._closing and self._spooled() > 0)
        )

    async def _spill(self, everything: bool = False) -> None:
        """Move the memory queue's head to disk, oldest first, as much as the spool takes.

        Nobody else takes from the queue meanwhile (the sender waits on ``_order``;
        ``publish`` only appends), so the records written are exactly the head."""
        spool = self.spool
        assert spool is not None
        async with self._order:
            while self._queue and (everything or self._should_spill()):
                head = list(itertools.islice(self._queue, SPILL_CHUNK))
                taken = await asyncio.to_thread(_append, spool, head)
                for _ in range(taken):
                    self._queue.popleft()
                self.spilled += taken
                if taken < len(head):
                    if not self._spool_full_logged:
                        log.error(
                            "event spool full (%d bytes at %s): events wait in memory, then drop",
                            spool.size_bytes,
                            self.spool_dir,
                        )
                    self._spool_full_logged = True
                    break
                self._spool_full_logged = False
        self._wakeup.set()
