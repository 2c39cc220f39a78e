"""The memoised partition choice must be exactly the default partitioner's: the processors'
tables are partitioned by it, and a tenant's events on another partition would be counted
by the wrong table."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from schemas.partitioning import partition_for


def test_matches_the_default_partitioner_for_many_keys_and_partition_counts() -> None:
    rng = random.Random(7)
    default = DefaultPartitioner()
    keys = [b"", b"a", b"acme", "tenant-ü".encode()] + [
        rng.randbytes(rng.randrange(1, 40)) for _ in range(500)
    ]
    for count in (1, 3, 8, 12):
        partitions = list(range(count))
        for key in keys:
            assert partition_for(key, partitions) == default(key, partitions, partitions)


def test_a_key_seen_before_still_follows_the_partition_list() -> None:
    key = b"tenant-seen-twice"
    first = partition_for(key, [0, 1, 2, 3, 4, 5, 6, 7])
    assert partition_for(key, [10, 11, 12, 13, 14, 15, 16, 17]) == 10 + first
    assert partition_for(key, [5]) == 5
