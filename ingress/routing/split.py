"""Live A/B splits: which variant of an experiment a request belongs to.

The choice is a stable hash (blake2b of experiment and sticky subject) mapped to [0, 1):
the same user (or key) always lands in the same bucket, buckets below ``holdout`` stay on
the normal route, the rest are divided by the variants' weights. No state, so every
replica and every restart agrees.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from schemas.routing_config import SplitExperiment, SplitVariant

HOLDOUT = "holdout"


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str
    variant: str
    model: str | None = None
    """The model the variant asks for; None = the caller's."""
    deployments: tuple[str, ...] = ()


def bucket(experiment: str, subject: str) -> float:
    """A uniform, stable number in [0, 1) for this subject in this experiment."""
    digest = hashlib.blake2b(f"{experiment}\x00{subject}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign(split: SplitExperiment, subject: str) -> Assignment:
    point = bucket(split.name, subject)
    if point < split.holdout:
        return Assignment(split.name, HOLDOUT)
    # rescale what is past the holdout to [0, 1) and walk the cumulative weights
    point = (point - split.holdout) / (1 - split.holdout)
    total = sum(v.weight for v in split.variants)
    edge = 0.0
    chosen: SplitVariant = split.variants[-1]
    for variant in split.variants:
        edge += variant.weight / total
        if point < edge:
            chosen = variant
            break
    return Assignment(split.name, chosen.name, chosen.model, chosen.deployments)
