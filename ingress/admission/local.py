"""What this replica admitted that the processors' state does not show yet.

Each admission is held with its estimate until the offset of its ``request.received``
event is known (the publisher's acknowledgement) and a ``meter.progress`` for that
partition reaches it: from then on the meter states count it (as a reservation, later as
its real cost). Admissions whose event never gets an offset (Kafka away, event spooled)
are dropped after ``hold_s``: the processors will count them when the spool drains.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(slots=True)
class Admitted:
    meters: tuple[str, ...]
    usd: Decimal
    tokens: int
    at: float = field(default_factory=time.monotonic)
    partition: int = -1
    offset: int = -1
    gone: bool = False


@dataclass(slots=True)
class Totals:
    usd: Decimal = Decimal(0)
    tokens: int = 0
    requests: int = 0


class LocalAdmissions:
    def __init__(self, hold_s: float, on_covered: Callable[[float], None] | None = None) -> None:
        self.hold_s = hold_s
        self.on_covered = on_covered
        """Called with the seconds from admission to the state counting it (the lag)."""
        self.totals: dict[str, Totals] = {}
        self._unacked: deque[Admitted] = deque()
        self._acked: dict[int, deque[Admitted]] = {}
        self._reflected: dict[int, int] = {}

    def add(self, meters: tuple[str, ...], usd: Decimal, tokens: int) -> Admitted:
        entry = Admitted(meters, usd, tokens)
        for meter in meters:
            totals = self.totals.get(meter)
            if totals is None:
                totals = self.totals[meter] = Totals()
            totals.usd += usd
            totals.tokens += tokens
            totals.requests += 1
        self._unacked.append(entry)
        return entry

    def acked(self, entry: Admitted, partition: int, offset: int) -> None:
        entry.partition, entry.offset = partition, offset
        if offset <= self._reflected.get(partition, -1):
            self._forget(entry)
        else:
            self._acked.setdefault(partition, deque()).append(entry)

    def covered(self, partition: int, offset: int) -> None:
        """The processors' state reflects this partition up to ``offset``."""
        self._reflected[partition] = max(offset, self._reflected.get(partition, -1))
        waiting = self._acked.get(partition)
        while waiting and waiting[0].offset <= offset:
            self._forget(waiting.popleft())
        self._expire()

    def of(self, meter: str) -> Totals:
        return self.totals.get(meter) or Totals()

    def _expire(self) -> None:
        deadline = time.monotonic() - self.hold_s
        while self._unacked and (self._unacked[0].at < deadline or self._unacked[0].offset >= 0):
            entry = self._unacked.popleft()
            if entry.offset < 0:
                self._forget(entry, lagged=False)

    def _forget(self, entry: Admitted, lagged: bool = True) -> None:
        if entry.gone:
            return
        entry.gone = True
        if lagged and self.on_covered is not None:
            self.on_covered(time.monotonic() - entry.at)
        for meter in entry.meters:
            totals = self.totals[meter]
            totals.usd -= entry.usd
            totals.tokens -= entry.tokens
            totals.requests -= 1
            if totals.requests <= 0:
                del self.totals[meter]
