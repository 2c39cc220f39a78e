"""Faust's aiokafka transport, with four costs of faust-streaming 0.15 taken out of the
path from broker to agent.

- **Consumer thread.** Faust runs the aiokafka consumer in a thread with an event loop of
  its own; every fetch, commit and seek crosses between the two loops, and each crossing
  waits for the GIL. Here the consumer runs on the worker's own loop and a call into it
  is a plain await: ``tests.bench.metering_throughput --rate 800`` measured 697-713 µs of
  worker CPU per event against 825-831 µs with the thread on one machine, 359-360 µs
  against 389-391 µs on a faster one (interleaved runs). Nothing in the worker holds its
  loop for long (the guard agent runs Presidio in an executor), so heartbeats still go
  out on time.

- **Fetch wait.** aiokafka keeps one fetch in flight per broker. While a busy
  partition's records are being applied, the next fetch goes out for the idle partitions
  only and waits on the broker for up to ``fetch_max_wait_ms``; the busy partition's next
  fetch queues behind it. Faust hard-codes that wait to 1500 ms, which capped a metering
  worker at ~2,000 events/s with its event loop half idle. It is configurable here
  (measured with ``tests.bench.metering_throughput``).
- **Fetch backoff.** aiokafka sends no fetch to a broker while a partition's fetched
  records younger than its ``prefetch_backoff`` (100 ms) wait to be taken. Faust reads
  its tables' changelogs while recovering; afterwards the consumer still fetches them,
  and Faust never takes those records: the first such fetch of each changelog partition
  stopped all fetching for 100 ms. It comes with a tenant's first events on a partition
  (their first ledger writes): in ``tests.bench.admission_overshoot`` (a fresh tenant
  per round) the metering agent got nothing for 96-137 ms right after the first events
  of 9 rounds out of 12, and in none of 12 with the backoff at ``PREFETCH_BACKOFF_S``.
  A partition with records waiting is still not fetched again until they are taken.
- **Delivery.** Faust hands each fetched message to the streams inside its own
  ``wait_first`` (four tasks and an ``asyncio.wait``, so at least two turns of the event
  loop per message), racing it against a flow suspension (a rebalance). On a busy machine
  every turn of the loop is long, and the agent saw a few events per batch while the
  broker held seconds of backlog. Here one ``wait_first`` covers a whole fetch: the race
  against suspension is kept, per fetch; flow and generation are checked per message as
  Faust does, and what a suspension cuts off is fetched again after the rebalance (its
  read offset is not advanced). Measured with ``tests.bench.metering_throughput``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiokafka
import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from mode import Service
from mode.utils.futures import maybe_async

YIELD_EVERY = 100
"""Messages delivered between yields to the event loop (Faust's own figure)."""
PREFETCH_BACKOFF_S = 0.005
"""How long fetched records that nobody takes may hold up the next fetch (aiokafka: 0.1)."""


def shorten_fetch_backoff(consumer: aiokafka.AIOKafkaConsumer, seconds: float) -> None:
    """Applies to the records ``consumer`` fetches from now on (it must be started: its
    fetcher is built by ``start``). aiokafka 0.14 takes no such argument."""
    fetcher = consumer._fetcher  # type: ignore[attr-defined]
    if not hasattr(fetcher, "_prefetch_backoff"):
        raise RuntimeError(
            "aiokafka's fetcher has no _prefetch_backoff: this aiokafka is not the one "
            "requirements.lock pins; reinstall with `make install`"
        )
    fetcher._prefetch_backoff = seconds


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    """Faust's consumer thread without the thread: the aiokafka consumer runs on the
    worker's own event loop, and a call into it is a plain await."""

    _serving: asyncio.Future[None]

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Read by ``AIOKafkaConsumer.start`` when it builds its fetcher (aiokafka 0.14).
        consumer._fetch_max_wait_ms = self.transport.fetch_max_wait_ms  # type: ignore[attr-defined]
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        shorten_fetch_backoff(self._consumer, PREFETCH_BACKOFF_S)  # type: ignore[arg-type]

    async def start(self) -> None:
        self._thread_started.set()
        self._thread_running = self.parent_loop.create_future()
        self._serving = asyncio.ensure_future(self._serve())
        try:
            await self._thread_running  # notified by ``_serve`` once started, or its crash
        finally:
            self._thread_running = None

    async def stop(self) -> None:
        if not self._started.is_set():  # set inside ``_serve``: it runs
            return
        await Service.stop(self)  # ``ServiceThread.stop`` would join a thread
        await asyncio.gather(self._serving, return_exceptions=True)

    async def _gather_remaining_tasks(self) -> None:
        """On a thread's own loop, every task left is the consumer's; here they are the
        worker's, and the worker gathers them when it stops."""

    async def call_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await maybe_async(fun(*args, **kwargs))

    async def cast_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        await maybe_async(fun(*args, **kwargs))


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, thread_loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's fetch loop (``faust.transport.consumer``), one delivery task per fetch."""
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                generation = self.app.consumer_generation_id
                fetched = [item async for item in self.getmany(timeout=1.0)]
                await self.sleep(0)  # getmany may return at once, again and again
                if fetched and not self.should_stop:
                    await self.wait_first(
                        self._deliver(fetched, generation), self.suspend_flow.wait()
                    )
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver(self, fetched: list[tuple[TP, Any]], generation: int) -> None:
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        for count, (tp, message) in enumerate(fetched, 1):
            if not self.flow_active or self.app.consumer_generation_id != generation:
                return  # a rebalance: the rest is fetched again from committed offsets
            if count % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            offset = message.offset
            last = read_offset[tp]
            if last is not None and offset < last:
                self.log.dev("DROPPED MESSAGE ROFF %r: k=%r", offset, message.key)
                continue
            if last and offset - last > 1 and acks_enabled_for(message.topic):
                await self._add_gap(tp, last + 1, offset)
            if self._commit_every is not None and self._n_acked >= self._commit_every:
                self._n_acked = 0
                await self.commit()
            await self.callback(message)
            read_offset[tp] = offset


class Transport(driver.Transport):
    Consumer = _Consumer

    def __init__(self, url: Any, app: faust.App, fetch_max_wait_ms: int) -> None:
        super().__init__(url, app)
        self.fetch_max_wait_ms = fetch_max_wait_ms


def use_fetch_wait(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Give ``app`` this transport, its consumers fetching with ``fetch_max_wait_ms``."""
    app.transport = Transport(app.conf.broker_consumer, app, fetch_max_wait_ms)
