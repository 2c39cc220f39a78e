"""The metering agent: every event of ``tollgate.requests`` → usage and meter states.

It consumes the request log, applies each event through the ``Ledger`` (one table, exact
on replay), sends ``usage.recorded`` for each billed request, and publishes the meter
states it changed to ``tollgate.admission`` every ``publish_interval_ms``: first the
states, then each partition's progress (the offset they reflect). Progress goes out on
every tick even when nothing changed, so readers can tell live state from stale.
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import Iterator
from functools import partial
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.types import TP, StoreT

from processors.dead_letter import dead_lettering_topic
from processors.metering.ledger import Ledger, Rules, WriteBehind
from processors.record_batches import RecordBatches
from schemas.codec import EVENT_CODEC
from schemas.events import Event, MeterProgress, MeterState, from_dict
from schemas.pricing import PriceBook
from schemas.topics import ADMISSION, REQUESTS, USAGE

log = logging.getLogger("tollgate.processors.metering")
HEARTBEAT_S = 1.0
"""Progress goes out at least this often while nothing changes: the readers' liveness."""
BATCH_MAX = 500
BATCH_WAIT_S = 0.005
"""Events are applied in batches of what arrived within this (at most ``BATCH_MAX``)."""


@contextlib.contextmanager
def acting_for(event: faust.EventT) -> Iterator[None]:
    """Table reads and writes as if inside ``event``'s iteration.

    A Faust table finds the changelog partition and the RocksDB bucket of a key from the
    stream's current event; a batch taken with ``take_events`` has none of its own, so
    each event's reads, and each partition's writes, are done under the right one.
    (faust-streaming 0.15 keeps it in ``faust.streams._current_event``.)
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class StatePublisher:
    """Collects changed meter states between ticks; the newest state of a meter wins."""

    def __init__(self, app: faust.App, table: Any) -> None:
        self.app = app
        self.table = table
        self.dirty: dict[str, MeterState] = {}
        self.progress: dict[int, int] = {}
        self.sent: dict[int, tuple[int, float]] = {}
        self.republished = False
        self.records = RecordBatches(app.producer._ensure_producer)  # type: ignore[attr-defined]

    def touched(self, states: dict[str, MeterState], partition: int, offset: int) -> None:
        self.dirty.update(states)
        self.progress[partition] = offset

    def _assigned(self) -> list[int]:
        return sorted(
            tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == REQUESTS.name
        )

    async def flush(self) -> None:
        partitions = self._assigned()
        recovery = self.app.tables.recovery  # type: ignore[attr-defined]  # concrete manager
        recovered = recovery.completed.is_set() and not self.app.in_recovery
        if not partitions or not recovered:
            return  # tables still filling from their changelogs: nothing true to say yet
        if not self.republished:
            self._load_recovered(partitions)
        # One snapshot: while the sends below await, the agent goes on applying events, and
        # progress must never claim an offset whose states are not in this flush.
        dirty, self.dirty = self.dirty, {}
        progress = dict(self.progress)
        # A flush's states and then its progress marks go out as one record batch: a
        # reader never applies a state long before the mark that says what it covers.
        for key, state in dirty.items():
            await self._add(key.removeprefix("m:"), state)
        now = time.monotonic()
        for partition in partitions:
            offset = progress.get(partition, -1)
            last_offset, last_at = self.sent.get(partition, (-2, 0.0))
            if offset == last_offset and now - last_at < HEARTBEAT_S:
                continue
            self.sent[partition] = (offset, now)
            mark = MeterProgress(request_id="", tenant="", partition=partition, offset=offset)
            await self._add(f"progress#{partition}", mark)
        await self.records.send()

    async def _add(self, key: str, event: Event) -> None:
        await self.records.add_keyed(ADMISSION.name, key.encode(), event.encode())

    def _load_recovered(self, partitions: list[int]) -> None:
        """After a start or rebalance: every recovered meter once, and where each stopped."""
        self.republished = True
        for key, raw in self.table.items():
            if key.startswith("m:") and key not in self.dirty:
                state = from_dict(raw)
                assert isinstance(state, MeterState)
                self.dirty[key] = state
            elif key.startswith("p:") and int(key[2:]) in partitions:
                self.progress.setdefault(int(key[2:]), int(raw))
        log.info("republishing %d recovered meter states", len(self.dirty))


class TableWriter:
    """A batch's writes to the ledger: into its store and into its changelog as record
    batches, not through Faust's ``table[key] = value`` (one producer-buffer send per
    key, see ``processors.record_batches``)."""

    def __init__(self, table: faust.Table, records: RecordBatches) -> None:
        self.table = table
        self.store = cast(StoreT, table.data)
        self.records = records
        self.last_of: dict[int, faust.EventT] = {}
        """Per partition, the batch's last event of it: the store's partition comes from it."""

    def __call__(self, partition: int, writes: list[tuple[str, Any]]) -> None:
        with acting_for(self.last_of[partition]):
            for key, value in writes:
                self.store[key] = value
        changelog = self.table.changelog_topic
        topic = changelog.get_topic_name()
        # where a restart resumes reading the changelog into RocksDB, once Kafka has the
        # batch (Faust's ``_on_changelog_sent`` does this for its own sends)
        persisted = partial(self.store.set_persisted_offset, TP(topic, partition))
        for key, value in writes:
            raw_key, _ = changelog.prepare_key(key, self.table.key_serializer)
            raw_value, _ = changelog.prepare_value(value, self.table.value_serializer)
            self.records.add(topic, partition, raw_key, raw_value, persisted)


def register(app: faust.App, prices: PriceBook, rules: Rules, interval_s: float) -> None:
    requests = dead_lettering_topic(
        app, REQUESTS.name, partitions=REQUESTS.partitions, value_serializer=EVENT_CODEC
    )
    table = cast(faust.Table, app.Table("ledger", partitions=REQUESTS.partitions))
    records = RecordBatches(app.producer._ensure_producer)  # type: ignore[attr-defined]
    write = TableWriter(table, records)
    last_of = write.last_of

    batch = WriteBehind(table, write)
    ledger = Ledger(batch, rules, prices)
    states = StatePublisher(app, table)

    @app.agent(requests, name="usage")
    async def metering_agent(stream: faust.StreamT[Any]) -> None:
        batches = stream.take_events(BATCH_MAX, within=BATCH_WAIT_S)  # type: ignore[attr-defined]
        async for events in batches:
            billed = []
            for event in events:
                message = event.message
                last_of[message.partition] = event
                batch.partition = message.partition
                with acting_for(event):
                    applied = ledger.apply(event.value, message.partition, message.offset)
                if applied.usage is not None:
                    billed.append(applied.usage)
                states.touched(applied.states, message.partition, message.offset)
            batch.flush()  # in the table before the batch is acknowledged
            last_of.clear()
            for record in billed:
                await records.add_keyed(USAGE.name, record.tenant.encode(), record.encode())
            await records.send()

    @app.timer(interval=interval_s, name="publish-meter-states")
    async def publish_states() -> None:
        await states.flush()

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust types its own
    async def republish(app: faust.App, assigned: Any, **kwargs: Any) -> None:
        batch.forget()
        states.republished = False

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        batch.forget()
