"""The ingress's token and cost counters: the gauge of money a dashboard shows."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ingress.metrics import Metrics
from schemas.pricing import Price


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, (name, labels)
    return value


def test_usage_counts_tokens_and_prices_cached_input_at_its_own_rate() -> None:
    metrics = Metrics()
    price = Price("gpt-x", Decimal("2.50"), Decimal("10"), cached_input=Decimal("1.25"))
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "prompt_tokens_details": {"cached_tokens": 400},
    }
    metrics.usage("gpt-x", usage, price)
    metrics.usage("gpt-x", usage, price)
    assert _value(metrics, "tollgate_tokens_total", model="gpt-x", kind="prompt") == 2000
    assert _value(metrics, "tollgate_tokens_total", model="gpt-x", kind="completion") == 400
    assert _value(metrics, "tollgate_tokens_total", model="gpt-x", kind="cached") == 800
    once = (600 * 2.50 + 400 * 1.25 + 200 * 10) / 1_000_000
    assert _value(metrics, "tollgate_cost_usd_total", model="gpt-x") == pytest.approx(2 * once)


def test_a_new_price_for_the_model_is_priced_at_its_own_rates() -> None:
    # a reload builds new price objects: the memo must not answer with an old one's rates
    metrics = Metrics()
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 0}
    metrics.usage("m", usage, Price("m", Decimal("1"), Decimal("1")))
    metrics.usage("m", usage, Price("m", Decimal("3"), Decimal("1")))
    assert _value(metrics, "tollgate_cost_usd_total", model="m") == pytest.approx(4.0)
