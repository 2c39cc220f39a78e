"""Budgets, rate limits and alert rules are validated with messages that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from schemas.config import ConfigError, load_config


def _load(tmp_path: Path, **sections: object) -> str:
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(sections))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return str(info.value)


def test_a_budget_needs_a_limit_and_a_coherent_period(tmp_path: Path) -> None:
    message = _load(
        tmp_path,
        budgets=[
            {"name": "a", "scope": "tenant"},
            {"name": "b", "scope": "key", "max_usd": 5, "period": "custom"},
            {"name": "c", "scope": "team", "max_tokens": 9, "thresholds": [0.5, 80]},
            {"name": "d", "scope": "galaxy", "max_tokens": 9},
        ],
    )
    assert "budgets.0" in message and "`max_usd`, `max_tokens` or both" in message
    assert "budgets.1" in message and "`period_s` goes with `period: custom`" in message
    assert "budgets.2" in message and "fractions of the limit" in message
    assert "budgets.3.scope" in message


def test_rule_names_are_unique_per_section(tmp_path: Path) -> None:
    message = _load(
        tmp_path,
        budgets=[
            {"name": "daily", "scope": "key", "max_usd": 1, "period": "daily"},
            {"name": "daily", "scope": "team", "max_usd": 9, "period": "daily"},
        ],
    )
    assert "budgets.1.name: `daily` is used twice" in message


def test_a_rate_limit_needs_a_limit(tmp_path: Path) -> None:
    message = _load(tmp_path, rate_limits=[{"name": "rpm", "scope": "key"}])
    assert "rate_limits.0 (line" in message and "`requests_per_minute`" in message


def test_valid_limits_load(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "budgets": [{"name": "m", "scope": "tenant", "match": "acme", "max_usd": 500}],
                "rate_limits": [{"name": "r", "scope": "key", "tokens_per_minute": 10_000}],
                "admission": {"when_stale": "closed"},
                "alerts": {"spend_spike": None},
            }
        )
    )
    config = load_config(path, env={})
    assert config.budgets[0].period == "monthly" and config.budgets[0].enforcement == "hard"
    assert config.rate_limits[0].match == "*"
    assert config.admission.when_stale == "closed" and config.alerts.spend_spike is None
