"""Period and window arithmetic shared by the processors (counting) and the ingress (admitting)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.limits_config import BudgetSettings
from schemas.meters import Subjects, budget_meters, period_bounds, shift_window, sliding


def _ms(*parts: int) -> int:
    """Epoch ms of (year, month, day[, hour[, minute[, second]]]) in UTC."""
    year, month, day, hour, minute, second = (*parts, 0, 0, 0)[:6]
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


def _budget(**fields: Any) -> BudgetSettings:
    return BudgetSettings.model_validate({"name": "b", "scope": "tenant", "max_usd": 1, **fields})


@pytest.mark.parametrize(
    ("period", "at", "start", "end"),
    [
        ("hourly", (2026, 3, 5, 14, 59, 59), (2026, 3, 5, 14), (2026, 3, 5, 15)),
        ("daily", (2026, 12, 31, 23, 0), (2026, 12, 31), (2027, 1, 1)),
        ("weekly", (2026, 11, 22, 12), (2026, 11, 16), (2026, 11, 23)),  # a Sunday
        ("weekly", (2026, 11, 23), (2026, 11, 23), (2026, 11, 30)),  # Monday starts one
        ("monthly", (2028, 2, 29, 23, 59), (2028, 2, 1), (2028, 3, 1)),  # leap year
        ("monthly", (2026, 12, 15), (2026, 12, 1), (2027, 1, 1)),
    ],
)
def test_calendar_periods_reset_at_utc_boundaries(
    period: str, at: tuple[int, ...], start: tuple[int, ...], end: tuple[int, ...]
) -> None:
    assert period_bounds(_budget(period=period), _ms(*at)) == (_ms(*start), _ms(*end))


def test_custom_periods_repeat_from_their_anchor() -> None:
    budget = _budget(period="custom", period_s=3600, anchor="2026-01-01T00:30:00Z")
    assert period_bounds(budget, _ms(2026, 6, 1, 10, 29)) == (
        _ms(2026, 6, 1, 9, 30),
        _ms(2026, 6, 1, 10, 30),
    )
    # before the anchor too: the grid extends backwards
    assert period_bounds(budget, _ms(2025, 12, 31, 23, 45)) == (
        _ms(2025, 12, 31, 23, 30),
        _ms(2026, 1, 1, 0, 30),
    )


def test_the_sliding_minute_weighs_the_previous_minute_by_what_is_left_of_it() -> None:
    minute = 29_000_000
    start = minute * 60_000
    assert sliding(minute, [2, 10], start) == 12
    assert sliding(minute, [2, 10], start + 45_000) == pytest.approx(2 + 10 * 0.25)
    # a minute later, this minute becomes the previous one; two minutes later, nothing
    assert sliding(minute, [2, 10], start + 60_000) == 2
    assert sliding(minute, [2, 10], start + 120_000) == 0
    assert shift_window(minute, [2, 10], minute + 1) == [0, 2]
    assert shift_window(minute, [2, 10], minute + 5) == [0, 0]


def test_rules_match_one_subject_or_each_and_skip_missing_attributes() -> None:
    each_user = BudgetSettings(name="per-user", scope="user", max_tokens=10)
    acme = BudgetSettings(name="acme", scope="tenant", match="acme", max_tokens=10)
    budgets = (each_user, acme)
    ids = [m.id for _, m in budget_meters(budgets, Subjects("k1", "acme", "gpt-4o", user="ann"))]
    assert ids == ["budget:per-user:ann", "budget:acme:acme"]
    no_user = Subjects("k1", "globex", "gpt-4o")
    assert budget_meters(budgets, no_user) == []
