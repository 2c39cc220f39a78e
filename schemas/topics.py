"""Every Kafka topic, declared once: name, partitions, key and retention.

Topics are keyed by tenant so each tenant's events share a partition and per-tenant state
co-partitions across topics. Infra creates them before any stage starts; the broker's
auto-creation is off, so a typo fails loudly instead of creating a 1-partition topic.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    key: str = "tenant"
    compacted: bool = False
    compact_every_ms: int | None = None
    """For busy compacted topics: roll segments this often so compaction keeps up."""

    def configs(self) -> dict[str, str]:
        if self.compacted and self.compact_every_ms:
            return {
                "cleanup.policy": "compact",
                "segment.ms": str(self.compact_every_ms),
                "min.cleanable.dirty.ratio": "0.1",
            }
        if self.compacted:
            return {"cleanup.policy": "compact"}
        return {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}


PARTITIONS = 6

REQUESTS = TopicSpec("tollgate.requests", PARTITIONS, retention_ms=7 * DAY_MS)
"""request.received, response.completed and response.failed, in order per tenant."""

USAGE = TopicSpec("tollgate.usage", PARTITIONS, retention_ms=7 * DAY_MS)
"""usage.recorded: tokens and cost per request, computed by the processors."""

DEAD_LETTER = TopicSpec("tollgate.dead-letter", 1, retention_ms=30 * DAY_MS, key="source")
"""Events a stage could not decode, with the reason, kept for inspection and replay."""

KEYS = TopicSpec("tollgate.keys", 1, retention_ms=-1, key="key_id", compacted=True)
"""key.upserted and key.revoked from the admin API, keyed by key_id: compaction keeps each
key's last state, and every ingress replica reads the whole topic into memory at start.
One partition, so a replica's read position is one offset and "caught up" is one compare."""

ADMISSION = TopicSpec(
    "tollgate.admission",
    1,
    retention_ms=-1,
    key="meter#partition",
    compacted=True,
    compact_every_ms=10 * 60 * 1000,
)
"""meter.state, meter.progress and key.blocked (``guard:<key_id>``) from the processors, read
into memory by every ingress replica (admission) and by the alerting agent. One partition, so
a progress record is read after the states it covers, and compaction keeps each meter's last
state."""

ALERTS = TopicSpec("tollgate.alerts", 1, retention_ms=30 * DAY_MS, key="subject")
"""alert.raised: budget thresholds, exhaustion, spend spikes, provider health, blocked keys."""

EXPERIMENTS = TopicSpec("tollgate.experiments", 1, retention_ms=30 * DAY_MS, key="experiment")
"""replay.result: each replayed request compared with its baseline, from `tollgate replay`."""

VERDICTS = TopicSpec("tollgate.verdicts", PARTITIONS, retention_ms=7 * DAY_MS)
"""guard.verdict: Presidio's findings per request and response, from the processors; keyed
by tenant like the request log, so a key's verdicts stay in one partition."""

ALL_TOPICS: tuple[TopicSpec, ...] = (
    REQUESTS,
    USAGE,
    DEAD_LETTER,
    KEYS,
    ADMISSION,
    ALERTS,
    EXPERIMENTS,
    VERDICTS,
)
