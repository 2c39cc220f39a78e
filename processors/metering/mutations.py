"""What one event does to one meter: pure functions on ``MeterState``.

Every function takes the event's own time, never the clock, so replaying the log yields
the same states to the last digit (money stays ``Decimal``, carried as a string).
"""

from __future__ import annotations

from decimal import Decimal

from schemas.events import MeterState
from schemas.limits_config import BudgetSettings
from schemas.meters import minute_of, period_bounds, shift_window

LATENCY_BOUNDS_MS = (100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 120_000)
"""Upper bounds of the latency histogram kept per provider and minute (last bucket: above)."""
PROVIDER_MINUTES = 3


def _add(amount: str, delta: Decimal) -> str:
    return str(max(Decimal(amount) + delta, Decimal(0)))


def reserve(state: MeterState, usd: Decimal, tokens: int) -> None:
    state.reserved_usd = _add(state.reserved_usd, usd)
    state.reserved_tokens += tokens
    state.in_flight += 1


def release(state: MeterState, usd: Decimal, tokens: int) -> None:
    state.reserved_usd = _add(state.reserved_usd, -usd)
    state.reserved_tokens = max(state.reserved_tokens - tokens, 0)
    state.in_flight = max(state.in_flight - 1, 0)


def charge(state: MeterState, budget: BudgetSettings, usd: Decimal, tokens: int, ts: int) -> None:
    """Spend lands in the period of the response's time; a newer period starts from zero."""
    start, _ = period_bounds(budget, ts)
    if start > state.period_start:
        state.period_start, state.spent_usd, state.tokens = start, "0", 0
    elif start < state.period_start:
        return  # a late event of a period already closed: history stays as it was
    state.spent_usd = _add(state.spent_usd, usd)
    state.tokens += tokens


def _roll(state: MeterState, ts: int) -> int | None:
    """Index (0 = this minute, 1 = the one before) of ``ts`` after moving the window to it."""
    minute = minute_of(ts)
    if minute > state.minute:
        state.requests = shift_window(state.minute, state.requests, minute)
        state.window_tokens = shift_window(state.minute, state.window_tokens, minute)
        state.minute = minute
    offset = state.minute - minute
    return offset if offset in (0, 1) else None


def count_request(state: MeterState, ts: int) -> None:
    index = _roll(state, ts)
    if index is not None:
        state.requests[index] += 1


def count_tokens(state: MeterState, tokens: int, ts: int) -> None:
    index = _roll(state, ts)
    if index is not None:
        state.window_tokens[index] += tokens


def record_outcome(state: MeterState, ts: int, failed: bool, latency_ms: float) -> None:
    """Provider health: [requests, errors, latency histogram…] per minute, last few kept."""
    minute = minute_of(ts)
    key = str(minute)
    row = state.minutes.get(key) or [0, 0] + [0] * (len(LATENCY_BOUNDS_MS) + 1)
    row[0] += 1
    row[1] += int(failed)
    bucket = next(
        (i for i, bound in enumerate(LATENCY_BOUNDS_MS) if latency_ms <= bound),
        len(LATENCY_BOUNDS_MS),
    )
    row[2 + bucket] += 1
    state.minutes[key] = row
    _keep_recent(state, minute, PROVIDER_MINUTES)


def record_spend(state: MeterState, ts: int, usd: Decimal, keep_minutes: int) -> None:
    minute = minute_of(ts)
    key = str(minute)
    previous = Decimal(state.minutes[key][0]) if key in state.minutes else Decimal(0)
    state.minutes[key] = [str(previous + usd)]
    _keep_recent(state, minute, keep_minutes)


def _keep_recent(state: MeterState, minute: int, keep: int) -> None:
    for key in [k for k in state.minutes if int(k) <= minute - keep]:
        del state.minutes[key]
