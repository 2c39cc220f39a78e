"""Every replica's copy of the processors' meter states (``tollgate.admission``).

Shares are kept per meter and partition, exactly as published; deciding adds them up.
Each ``meter.progress`` record says a partition's states reflect its events up to an
offset: the local ledger then forgets what this replica admitted up to there, since the
state now counts it. Its ``ts`` (when the processors sent it) dates the view.

A state is held until the progress mark of its partition that follows it (the processors
send a flush's states, then its marks): applied alone, it would count requests the local
ledger still counts too, and refuse a request that fits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiokafka import ConsumerRecord

from ingress.admission.signal import Signal
from ingress.topic_follower import TopicFollower
from schemas.events import (
    EventDecodeError,
    KeyBlocked,
    MeterProgress,
    MeterState,
    ReplicaAlive,
    decode,
    now_ms,
)
from schemas.topics import ADMISSION

log = logging.getLogger("tollgate.ingress.admission")


class AdmissionView(TopicFollower):
    def __init__(
        self,
        bootstrap_servers: str,
        on_progress: Callable[[int, int], None],
        topic: str = ADMISSION.name,
    ) -> None:
        super().__init__(bootstrap_servers, topic)
        self.shares: dict[str, dict[int, MeterState]] = {}
        self._held: dict[int, list[MeterState]] = {}
        """Requests partition → states received since its last progress mark."""
        self.progress: dict[int, tuple[int, int]] = {}
        """partition → (offset reflected, when the processors said so, epoch ms)."""
        self.on_progress = on_progress
        self.progressed = Signal()
        """Notified at each progress mark: requests held for a share decide again."""
        self.replicas: dict[str, tuple[int, int]] = {}
        """Ingress replica id → (its last heartbeat, its interval), epoch ms."""
        self.blocks: dict[str, KeyBlocked] = {}
        """Key id → its latest escalation by the guards (``guard:<key_id>``)."""

    def share_of(self, meter: str) -> list[MeterState]:
        found = self.shares.get(meter)
        return list(found.values()) if found else []

    def block_of(self, key_id: str) -> KeyBlocked | None:
        return self.blocks.get(key_id)

    def age_ms(self, now: int | None = None) -> float:
        """How old the stalest partition's word is; infinite before any word at all."""
        if not self.progress:
            return float("inf")
        oldest = min(ts for _, ts in self.progress.values())
        return max((now or now_ms()) - oldest, 0)

    def live_replicas(self, me: str, now: int | None = None) -> int:
        """Replicas (this one included) heard from within three of their intervals."""
        now = now or now_ms()
        others = sum(
            1
            for replica, (ts, interval) in self.replicas.items()
            if replica != me and now - ts <= 3 * interval
        )
        return others + 1

    def apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:
            return
        try:
            event = decode(record.value)
        except EventDecodeError as exc:
            log.error("%s offset %d skipped: %s", self.topic, record.offset, exc)
            return
        if isinstance(event, MeterState):
            self._held.setdefault(event.partition, []).append(event)
        elif isinstance(event, MeterProgress):
            for state in self._held.pop(event.partition, ()):
                self.shares.setdefault(state.meter, {})[state.partition] = state
            self.progress[event.partition] = (event.offset, event.ts)
            self.on_progress(event.partition, event.offset)
            self.progressed.notify()
        elif isinstance(event, ReplicaAlive):
            self.replicas[event.replica] = (event.ts, event.interval_ms)
        elif isinstance(event, KeyBlocked):
            known = self.blocks.get(event.key_id)
            if known is None or event.since_ms >= known.since_ms:
                self.blocks[event.key_id] = event
