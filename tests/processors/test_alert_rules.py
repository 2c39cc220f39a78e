"""Alert rules are pure functions over summed meter shares: each alert fires once per
crossing and period (or minute), and a repeated check raises the same ids."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from processors.alerts.rules import budget_alerts, provider_health, spend_spike
from processors.metering.mutations import LATENCY_BOUNDS_MS
from schemas.events import MeterState
from schemas.limits_config import BudgetSettings, ProviderHealthSettings, SpendSpikeSettings

METER = "budget:monthly:acme"
BUDGET = BudgetSettings(
    name="monthly", scope="tenant", max_usd=Decimal("100"), thresholds=(0.5, 0.8, 0.9)
)


def _share(partition: int, **fields: Any) -> MeterState:
    return MeterState(
        request_id="", tenant="", meter=METER, kind="budget", partition=partition, **fields
    )


def _spent(*usd: str, period: int = 1000) -> list[MeterState]:
    return [_share(p, period_start=period, spent_usd=v) for p, v in enumerate(usd)]


def test_threshold_alerts_fire_once_per_crossing_and_period() -> None:
    alerts, fired = budget_alerts(BUDGET, METER, _spent("30", "25"), {})
    assert [(a.kind, a.severity, a.value) for a in alerts] == [("budget.threshold", "warning", 55)]
    again, fired = budget_alerts(BUDGET, METER, _spent("30", "26"), fired)
    assert again == []
    # 50% → 93% in one step: only the highest newly crossed threshold is raised
    jumped, fired = budget_alerts(BUDGET, METER, _spent("60", "33"), fired)
    assert [(a.kind, a.severity) for a in jumped] == [("budget.threshold", "critical")]
    assert "93%" in jumped[0].message
    assert budget_alerts(BUDGET, METER, _spent("60", "34"), fired)[0] == []


def test_exhaustion_fires_once_and_a_new_period_starts_over() -> None:
    alerts, fired = budget_alerts(BUDGET, METER, _spent("70", "31"), {})
    assert sorted(a.kind for a in alerts) == ["budget.exhausted", "budget.threshold"]
    assert "requests are refused" in next(a for a in alerts if a.kind == "budget.exhausted").message
    assert budget_alerts(BUDGET, METER, _spent("80", "31"), fired)[0] == []
    # an older period's share (one partition not yet rolled over) does not count
    mixed = [
        _share(0, period_start=2000, spent_usd="51"),
        _share(1, period_start=1000, spent_usd="99"),
    ]
    next_period, _ = budget_alerts(BUDGET, METER, mixed, fired)
    assert [(a.kind, a.period_start, a.value) for a in next_period] == [
        ("budget.threshold", 2000, 51)
    ]


def test_a_repeated_check_after_a_crash_raises_the_same_ids() -> None:
    first, _ = budget_alerts(BUDGET, METER, _spent("101"), {})
    replayed, _ = budget_alerts(BUDGET, METER, _spent("101"), {})
    assert [a.id for a in first] == [a.id for a in replayed] and len(first) == 2


def test_token_budgets_report_tokens() -> None:
    tokens = BudgetSettings(name="t", scope="key", max_tokens=1000, thresholds=(0.8,))
    shares = [_share(0, period_start=5, tokens=850)]
    alerts, _ = budget_alerts(tokens, "budget:t:k", shares, {})
    assert alerts[0].limit == 1000 and "850 of 1000 tokens" in alerts[0].message


def _minutes(series: dict[int, list[Any]]) -> MeterState:
    return MeterState(
        request_id="",
        tenant="",
        meter="m",
        kind="spend",
        partition=0,
        minutes={str(m): row for m, row in series.items()},
    )


def test_spend_spike_compares_the_window_with_the_trailing_rate() -> None:
    settings = SpendSpikeSettings(factor=3, window_s=60, trailing_s=600, min_usd=Decimal("1"))
    steady = {m: ["1.0"] for m in range(100, 110)}
    assert spend_spike(settings, "acme", [_minutes(steady)], {})[0] == []
    spiking = {**steady, 110: ["3.5"]}
    alerts, fired = spend_spike(settings, "acme", [_minutes(spiking)], {})
    assert [a.kind for a in alerts] == ["spend.spike"] and alerts[0].tenant == "acme"
    assert alerts[0].value == 3.5 and alerts[0].limit == 1.0
    assert spend_spike(settings, "acme", [_minutes(spiking)], fired)[0] == []
    small = {m: ["0.01"] for m in range(100, 110)} | {110: ["0.5"]}
    assert spend_spike(settings, "acme", [_minutes(small)], {})[0] == []  # below min_usd


def _provider_row(requests: int, errors: int, slow: int) -> list[int]:
    histogram = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    histogram[0] = requests - slow
    histogram[-1] = slow
    return [requests, errors, *histogram]


def test_provider_error_rate_and_latency_breaches_once_per_minute() -> None:
    settings = ProviderHealthSettings(max_error_rate=0.2, max_latency_p95_ms=5000, min_requests=10)
    healthy = _minutes({7: _provider_row(100, 5, 1)})
    assert provider_health(settings, "openai", [healthy], {})[0] == []
    failing = _minutes({7: _provider_row(40, 10, 0)})
    other_partition = _minutes({7: _provider_row(10, 5, 10)})
    alerts, fired = provider_health(settings, "openai", [failing, other_partition], {})
    assert sorted(a.kind for a in alerts) == ["provider.error_rate", "provider.latency"]
    rate = next(a for a in alerts if a.kind == "provider.error_rate")
    assert rate.value == 15 / 50
    assert provider_health(settings, "openai", [failing, other_partition], fired)[0] == []
    quiet = _minutes({8: _provider_row(5, 5, 5)})  # under min_requests
    assert provider_health(settings, "openai", [quiet], fired)[0] == []
