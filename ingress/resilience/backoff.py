"""How long to wait before the next try: exponential with full jitter, or what the
provider asked for (Retry-After) when it said so."""

from __future__ import annotations

import random

from schemas.routing_config import RetrySettings


def delay(settings: RetrySettings, retry: int, retry_after_s: float | None) -> float:
    """Seconds before retry number ``retry`` (1-based)."""
    if retry_after_s is not None:
        return retry_after_s
    ceiling = min(settings.backoff_max_s, settings.backoff_initial_s * 2 ** (retry - 1))
    return random.uniform(0, ceiling)
