"""A real sliding-window request limit (``rpm_limit``), with OpenAI's rate-limit headers."""

from __future__ import annotations

import math
import time
from collections import deque

WINDOW_S = 60.0
UNLIMITED = 10_000  # what the headers advertise when no limit is configured


class SlidingWindow:
    """Admits at most ``limit`` requests in any 60 s; 0 = unlimited (nothing is tracked)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._times: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._times and now - self._times[0] >= WINDOW_S:
            self._times.popleft()

    def admit(self) -> tuple[bool, dict[str, str]]:
        """Whether this request is admitted, and the x-ratelimit-* headers to answer with."""
        if not self.limit:
            return True, {
                "x-ratelimit-limit-requests": str(UNLIMITED),
                "x-ratelimit-remaining-requests": str(UNLIMITED - 1),
                "x-ratelimit-reset-requests": "6ms",
            }
        now = time.monotonic()
        self._expire(now)
        admitted = len(self._times) < self.limit
        if admitted:
            self._times.append(now)
        reset = WINDOW_S - (now - self._times[0]) if self._times else 0.0
        headers = {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.limit - len(self._times)),
            "x-ratelimit-reset-requests": _duration(reset),
        }
        return admitted, headers

    def retry_after(self) -> int:
        """Whole seconds until the oldest request leaves the window (at least 1)."""
        if not self._times:
            return 1
        return max(1, math.ceil(WINDOW_S - (time.monotonic() - self._times[0])))


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``6ms``, ``1.5s``, ``1m30s``."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3g}s" if rest else ""
    return f"{int(minutes)}m{text or '0s'}" if minutes else text
