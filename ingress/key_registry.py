"""Every replica's in-memory copy of the gateway keys created through the admin API.

A background aiokafka consumer with no consumer group reads the one partition of
``tollgate.keys`` from the beginning, applies each record, and keeps following it:

- ``key.upserted`` sets a key (sha256 → ``Principal``, key_id → the event);
- ``key.revoked``, or a tombstone (null value) for a key_id, removes it.

``caught_up`` is set once the records present at start are applied: the ingress reports
ready only then, so a key created before it started works on its first request. When Kafka
goes away the keys already read keep working; the consumer reconnects and resumes at the
next offset. Static keys from the config are not here: ``KeyStore`` checks them first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from ingress.auth import Principal
from schemas.events import EventDecodeError, KeyRevoked, KeyUpserted, decode
from schemas.topics import KEYS

log = logging.getLogger("tollgate.ingress.key_registry")


def principal_of(key: KeyUpserted) -> Principal:
    return Principal(
        tenant=key.tenant,
        key_id=key.key_id,
        team=key.team,
        user=key.user,
        org=key.org,
        models=frozenset(key.models),
        expires_at=key.expires_at,
    )


class KeyRegistry:
    def __init__(self, bootstrap_servers: str, topic: str = KEYS.name) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.caught_up = asyncio.Event()
        """Set once everything on the topic at start has been applied."""
        self.position = 0
        """The next offset to read: every record before it is applied."""
        self.last_error: str | None = None
        self._by_digest: dict[str, Principal] = {}
        self._by_id: dict[str, KeyUpserted] = {}
        self._advanced = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    # -- reading (O(1), no I/O) -----------------------------------------------------------

    def lookup(self, digest: str) -> Principal | None:
        return self._by_digest.get(digest)

    def get(self, key_id: str) -> KeyUpserted | None:
        return self._by_id.get(key_id)

    def all_keys(self) -> list[KeyUpserted]:
        return sorted(self._by_id.values(), key=lambda k: (k.created_at, k.key_id))

    async def wait_applied(self, offset: int, timeout_s: float) -> bool:
        """Whether the record at ``offset`` was applied within ``timeout_s``."""
        async with self._advanced:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._advanced.wait_for(lambda: self.position > offset)
            except TimeoutError:
                return False
            return True

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow_forever(), name="key-registry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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
                    log.info("%d gateway keys read from %s", len(self._by_id), self.topic)
                    self.caught_up.set()
                batch = await consumer.getmany(partition, timeout_ms=1000)
                for record in batch.get(partition, []):
                    self._apply(record)
                position = max(self.position, await consumer.position(partition))
                if position != self.position:
                    async with self._advanced:
                        self.position = position
                        self._advanced.notify_all()
        finally:
            await consumer.stop()

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:  # a tombstone
            if record.key:
                self._remove(record.key.decode(errors="replace"))
            return
        try:
            event = decode(record.value)
        except EventDecodeError as exc:
            log.error("%s offset %d skipped: %s", self.topic, record.offset, exc)
            return
        if isinstance(event, KeyUpserted):
            self._remove(event.key_id)
            self._by_id[event.key_id] = event
            self._by_digest[event.key_sha256] = principal_of(event)
        elif isinstance(event, KeyRevoked):
            self._remove(event.key_id)
        else:
            log.error("%s offset %d: unexpected %s skipped", self.topic, record.offset, event.TYPE)

    def _remove(self, key_id: str) -> None:
        old = self._by_id.pop(key_id, None)
        if old is not None:
            self._by_digest.pop(old.key_sha256, None)
