"""Reads ``tollgate.alerts`` and hands each alert to the webhooks that want its kind.

Policy: records are handled in order, one at a time (alerts are few). A record's offset is
committed only once every webhook has accepted it or been given up on, so a crash or a
shutdown mid-delivery reads the record again. Alert ids are deterministic per crossing, so
a redelivered or recomputed alert carries an id already seen: the last ``remember`` ids
handled are kept in memory and a repeat is skipped. That memory does not survive a restart,
and a shutdown between two webhooks of one alert re-posts it to the one that had it: the
guarantee is at least once, and once in the common case. Records that are not alerts go to
the dead-letter topic with the reason. A new consumer group starts at the earliest record;
alerts older than ``max_age_s`` are skipped then, so adding a webhook does not replay a
month of history into a channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from schemas.config import TollgateConfig
from schemas.events import AlertRaised, EventDecodeError, decode_as, now_ms
from schemas.topics import ALERTS, DEAD_LETTER
from sinks.alerts.webhooks import Outcome, RetryPolicy, Webhook, deliver, payload

log = logging.getLogger("tollgate.sink.alerts")


@dataclass
class AlertStats:
    delivered: int = 0
    gave_up: int = 0
    duplicates: int = 0
    stale: int = 0
    dead_lettered: int = 0


class AlertConsumer:
    def __init__(
        self,
        config: TollgateConfig,
        *,
        topic: str = ALERTS.name,
        policy: RetryPolicy | None = None,
        remember: int = 10_000,
        max_age_s: float = 24 * 3600,
    ) -> None:
        self.config = config
        self.topic = topic
        self.group_id = f"{config.sink.group_id}-alerts"
        self.policy = policy or RetryPolicy()
        self.hooks = [Webhook(s, i) for i, s in enumerate(config.alerts.webhooks)]
        self.remember = remember
        self.max_age_ms = int(max_age_s * 1000)
        self.stats = AlertStats()
        self._seen: OrderedDict[str, None] = OrderedDict()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; the alert being delivered then is read again
        on the next start."""
        bootstrap = self.config.kafka.bootstrap_servers
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=100,
        )
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        try:
            if not await _start(consumer, stop, "alert consumer"):
                return
            if not await _start(producer, stop, "alert dead-letter producer"):
                return
            log.info("delivering %s to %d webhook(s)", self.topic, len(self.hooks))
            async with aiohttp.ClientSession() as session:
                while not stop.is_set():
                    fetched = await consumer.getmany(timeout_ms=200)
                    for tp, records in fetched.items():
                        for record in records:
                            if not await self._handle(record, session, producer, stop):
                                return
                            await _commit(consumer, tp, record.offset + 1)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _handle(
        self,
        record: ConsumerRecord[bytes, bytes],
        session: aiohttp.ClientSession,
        producer: AIOKafkaProducer,
        stop: asyncio.Event,
    ) -> bool:
        """False when shutdown interrupted the delivery (the offset must not move)."""
        try:
            alert = decode_as(record.value or b"", AlertRaised)
            body = orjson.dumps(payload(alert))
            age_ms = now_ms() - int(alert.ts)
        except (EventDecodeError, TypeError, ValueError, AttributeError) as exc:
            await self._dead_letter(producer, record, exc)
            return True
        if alert.id in self._seen:
            self._seen.move_to_end(alert.id)
            self.stats.duplicates += 1
            log.info("alert %s (%s) already handled; skipped", alert.id, alert.kind)
            return True
        if age_ms > self.max_age_ms:
            self.stats.stale += 1
            log.warning(
                "alert %s (%s, %s) was raised %.1f h ago; too old to post, skipped",
                alert.id,
                alert.kind,
                alert.subject,
                age_ms / 3_600_000,
            )
            self._mark(alert.id)
            return True
        hooks = [hook for hook in self.hooks if hook.wants(alert)]
        outcomes = await asyncio.gather(
            *(deliver(session, hook, alert, body, policy=self.policy, stop=stop) for hook in hooks)
        )
        if Outcome.STOPPED in outcomes:
            return False
        self.stats.delivered += outcomes.count(Outcome.DELIVERED)
        self.stats.gave_up += outcomes.count(Outcome.GAVE_UP)
        self._mark(alert.id)
        return True

    def _mark(self, alert_id: str) -> None:
        self._seen[alert_id] = None
        while len(self._seen) > self.remember:
            self._seen.popitem(last=False)

    async def _dead_letter(
        self, producer: AIOKafkaProducer, record: ConsumerRecord[bytes, bytes], exc: Exception
    ) -> None:
        source = f"{record.topic}/{record.partition}/{record.offset}"
        log.error("not an alert, dead-lettering %s: %s", source, exc)
        headers = [
            ("tollgate-reason", str(exc).encode()[:1000]),
            ("tollgate-source", source.encode()),
        ]
        try:
            await producer.send_and_wait(
                DEAD_LETTER.name, record.value, key=record.key, headers=headers
            )
        except KafkaError as send_exc:
            log.error("could not dead-letter %s (%s); skipped", source, send_exc)
            return
        self.stats.dead_lettered += 1


async def _commit(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
    """A failed commit (a rebalance, Kafka away) only means a re-read, which the memory
    of handled ids absorbs; it is no reason to stop delivering."""
    try:
        await consumer.commit({tp: offset})
    except KafkaError as exc:
        log.warning("could not commit %s@%d (%s); the record may be read again", tp, offset, exc)


async def _start(client: Any, stop: asyncio.Event, what: str) -> bool:
    """Kafka may still be starting: keep trying until it answers (True) or ``stop``."""
    delay = 0.5
    while not stop.is_set():
        try:
            await client.start()
            return True
        except Exception as exc:
            log.warning("%s cannot reach Kafka yet (%s); retrying in %.1f s", what, exc, delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                delay = min(delay * 2, 5.0)
    return False
