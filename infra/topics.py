"""Creates the topics declared in ``schemas.topics`` before any stage starts."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.config import TollgateConfig
from schemas.topics import ALL_TOPICS, TopicSpec


class TopicMismatchError(RuntimeError):
    """A topic exists with another partition count than the contract says."""


async def ensure_topics(bootstrap_servers: str, specs: tuple[TopicSpec, ...] = ALL_TOPICS) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            # another process may create them in the meantime
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            s.name, s.partitions, replication_factor=1, topic_configs=s.configs()
                        )
                        for s in missing
                    ]
                )
        counts = await _partition_counts(admin, [s.name for s in specs])
        for spec in specs:
            if counts.get(spec.name) not in (None, spec.partitions):
                raise TopicMismatchError(
                    f"topic {spec.name} has {counts[spec.name]} partitions, the contract says "
                    f"{spec.partitions}; per-tenant state would not co-partition. Recreate the "
                    "topic or bump the schema version."
                )
    finally:
        await admin.close()


async def _partition_counts(
    admin: AIOKafkaAdminClient, names: list[str], wait_s: float = 15.0
) -> dict[str, int]:
    """Partitions per topic, once every topic reports some: a topic created a moment ago
    can describe as having none until the broker's metadata catches up."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        described = await admin.describe_topics(names)
        counts = {d["topic"]: len(d["partitions"]) for d in described}
        if all(counts.get(name) for name in names):
            return counts
        if asyncio.get_running_loop().time() > deadline:
            missing = [name for name in names if not counts.get(name)]
            raise TopicMismatchError(f"topics {missing} report no partitions after {wait_s:.0f} s")
        await asyncio.sleep(0.1)


def all_topics(config: TollgateConfig) -> tuple[TopicSpec, ...]:
    """The contract's topics and the processors' table changelogs."""
    from processors.app import changelog_topics, create_app

    return ALL_TOPICS + changelog_topics(create_app(config))
