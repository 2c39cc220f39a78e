"""How the analytics tables print values: money plainly, everything else as it is."""

from __future__ import annotations

from decimal import Decimal

from infra.analytics_cli import _cell


def test_money_prints_in_plain_notation() -> None:
    assert _cell("0E-12") == "0"
    assert _cell("0.000016650000") == "0.00001665"
    assert _cell(Decimal("1.665E-5")) == "0.00001665"
    assert _cell("12.50") == "12.5"


def test_other_values_print_unchanged() -> None:
    assert _cell(None) == ""
    assert _cell("gpt-4o-mini") == "gpt-4o-mini"
    assert _cell("2026-12-01 10:00:00") == "2026-12-01 10:00:00"
    assert _cell(39) == "39"
    assert _cell(True) == "True"
