"""Which meters a request counts against, and the clock arithmetic they share.

The processors (which count) and the ingress (which admits) must agree on meter names,
period boundaries and window arithmetic to the millisecond, so both import them from here.
A meter id is ``<kind>:<rule name>:<subject>``: ``budget:monthly-per-key:3f2a…``.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.limits_config import BudgetSettings, RateLimitSettings, Scope

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Subjects:
    """The attributes of one request that rules can scope to."""

    key: str
    tenant: str
    model: str
    user: str | None = None
    team: str | None = None
    org: str | None = None
    deployment: str | None = None
    experiment: str | None = None
    """Set on replayed and live-split calls: an ``experiment`` budget meters them."""

    def value(self, scope: Scope) -> str | None:
        value: str | None = getattr(self, scope)
        return value or None


@dataclass(frozen=True, slots=True)
class Meter:
    id: str
    subject: str


def _meters(kind: str, rules: tuple[BudgetSettings | RateLimitSettings, ...], who: Subjects):
    for rule in rules:
        value = who.value(rule.scope)
        if value is not None and rule.match in ("*", value):
            yield rule, Meter(f"{kind}:{rule.name}:{value}", value)


def budget_meters(
    budgets: tuple[BudgetSettings, ...], who: Subjects
) -> list[tuple[BudgetSettings, Meter]]:
    return list(_meters("budget", budgets, who))  # type: ignore[arg-type]


def rate_meters(
    limits: tuple[RateLimitSettings, ...], who: Subjects
) -> list[tuple[RateLimitSettings, Meter]]:
    return list(_meters("rate", limits, who))  # type: ignore[arg-type]


def provider_meter(provider: str) -> str:
    return f"provider::{provider}"


def spend_meter(tenant: str) -> str:
    return f"spend::{tenant}"


def rule_name(meter: str) -> str:
    return meter.split(":", 2)[1]


def period_bounds(budget: BudgetSettings, at_ms: int) -> tuple[int, int]:
    """Start and end (epoch ms, end exclusive) of the budget period holding ``at_ms``."""
    if budget.period == "custom":
        assert budget.period_s is not None
        anchor = int(budget.anchor.timestamp() * 1000)
        length = budget.period_s * 1000
        start = anchor + (at_ms - anchor) // length * length
        return start, start + length
    at = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
    if budget.period == "hourly":
        start_dt = at.replace(minute=0, second=0, microsecond=0)
        end_dt = start_dt + timedelta(hours=1)
    elif budget.period == "daily":
        start_dt = at.replace(hour=0, minute=0, second=0, microsecond=0)
        end_dt = start_dt + timedelta(days=1)
    elif budget.period == "weekly":
        day = at.replace(hour=0, minute=0, second=0, microsecond=0)
        start_dt = day - timedelta(days=day.weekday())
        end_dt = start_dt + timedelta(days=7)
    else:
        start_dt = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        days = calendar.monthrange(at.year, at.month)[1]
        end_dt = start_dt + timedelta(days=days)
    return int(start_dt.timestamp() * 1000), int(end_dt.timestamp() * 1000)


def minute_of(ms: int) -> int:
    return ms // MINUTE_MS


def shift_window(minute: int, counts: list[int], to_minute: int) -> list[int]:
    """``counts`` ([this minute, the one before]) as seen from ``to_minute``."""
    if to_minute == minute:
        return list(counts)
    if to_minute == minute + 1:
        return [0, counts[0]]
    return [0, 0]


def sliding(minute: int, counts: list[int], now_ms: int) -> float:
    """Events in the last 60 s, estimated from two fixed minutes: all of this minute plus
    the previous minute weighted by how much of it the window still covers."""
    current = minute_of(now_ms)
    this, before = shift_window(minute, counts, current) if current >= minute else counts
    elapsed = (now_ms % MINUTE_MS) / MINUTE_MS
    return this + before * (1 - elapsed)
