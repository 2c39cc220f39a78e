"""A circuit breaker per deployment: stop calling what keeps failing, probe it later.

closed → (``failure_threshold`` consecutive failures) → open → (``cooldown_s``) →
half-open, where up to ``half_open_probes`` calls go through: one success closes it, one
failure opens it again. Only failures that say the deployment is unwell count (5xx,
timeouts, unreachable); a 4xx is the caller's problem and a 429 is back-pressure.
"""

from __future__ import annotations

import time
from enum import StrEnum

from schemas.routing_config import BreakerSettings


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker:
    def __init__(self, settings: BreakerSettings) -> None:
        self.settings = settings
        self._now = time.monotonic
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0
        self._state = BreakerState.CLOSED

    @property
    def state(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self._now() - self._opened_at >= self.settings.cooldown_s
        ):
            self._state = BreakerState.HALF_OPEN
            self._probes = 0
        return self._state

    def allow(self) -> bool:
        """May a call go out now? (Counts a half-open probe when it says yes.)"""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._probes < self.settings.half_open_probes:
            self._probes += 1
            return True
        return False

    def succeeded(self) -> None:
        self._failures = 0
        self._state = BreakerState.CLOSED

    def failed(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._failures >= self.settings.failure_threshold
        ):
            self._state = BreakerState.OPEN
            self._opened_at = self._now()
            self._probes = 0

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.settings.cooldown_s - (self._now() - self._opened_at))
