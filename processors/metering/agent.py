"""The metering agent: every event of ``tollgate.requests`` → usage and meter states.

It consumes the request log, applies each event through the ``Ledger`` (one table, exact
on replay), sends ``usage.recorded`` for each billed request, and publishes the meter
states it changed to ``tollgate.admission`` every ``publish_interval_ms``: first the
states, then each partition's progress (the offset they reflect). Progress goes out on
every tick even when nothing changed, so readers can tell live state from stale.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from processors.dead_letter import dead_lettering_topic
from processors.metering.ledger import Ledger, Rules
from schemas.codec import EVENT_CODEC
from schemas.events import MeterProgress, MeterState, from_dict
from schemas.pricing import PriceBook
from schemas.topics import ADMISSION, REQUESTS, USAGE

log = logging.getLogger("tollgate.processors.metering")
HEARTBEAT_S = 1.0
"""Progress goes out at least this often while nothing changes: the readers' liveness."""


class StatePublisher:
    """Collects changed meter states between ticks; the newest state of a meter wins."""

    def __init__(self, app: faust.App, table: Any) -> None:
        self.app = app
        self.table = table
        self.topic = app.topic(ADMISSION.name, partitions=1, value_serializer=EVENT_CODEC)
        self.dirty: dict[str, MeterState] = {}
        self.progress: dict[int, int] = {}
        self.sent: dict[int, tuple[int, float]] = {}
        self.republished = False

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
        dirty, self.dirty = self.dirty, {}
        for key, state in dirty.items():
            await self.topic.send(key=key.removeprefix("m:").encode(), value=state)
        now = time.monotonic()
        for partition in partitions:
            offset = self.progress.get(partition, -1)
            last_offset, last_at = self.sent.get(partition, (-2, 0.0))
            if offset == last_offset and now - last_at < HEARTBEAT_S:
                continue
            self.sent[partition] = (offset, now)
            progress = MeterProgress(request_id="", tenant="", partition=partition, offset=offset)
            await self.topic.send(key=f"progress#{partition}".encode(), value=progress)

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


def register(app: faust.App, prices: PriceBook, rules: Rules, interval_s: float) -> None:
    requests = dead_lettering_topic(
        app, REQUESTS.name, partitions=REQUESTS.partitions, value_serializer=EVENT_CODEC
    )
    usage = app.topic(USAGE.name, partitions=USAGE.partitions, value_serializer=EVENT_CODEC)
    table = app.Table("ledger", partitions=REQUESTS.partitions)
    ledger = Ledger(table, rules, prices)
    states = StatePublisher(app, table)

    @app.agent(requests, name="usage")
    async def metering_agent(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            message = event.message
            applied = ledger.apply(event.value, message.partition, message.offset)
            if applied.usage is not None:
                await usage.send(key=applied.usage.tenant.encode(), value=applied.usage)
            states.touched(applied.states, message.partition, message.offset)

    @app.timer(interval=interval_s, name="publish-meter-states")
    async def publish_states() -> None:
        await states.flush()

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust types its own
    async def republish(app: faust.App, assigned: Any, **kwargs: Any) -> None:
        states.republished = False
