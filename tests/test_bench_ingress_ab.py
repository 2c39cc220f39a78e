"""The paired bench's summary: medians per tree, differences per round in order."""

from __future__ import annotations

from tests.bench.ingress_ab import summary


def _window(cpu: float, rate: float) -> dict[str, float]:
    return {"cpu_us_per_request": cpu, "req_per_s": rate}


def test_differences_pair_each_round_and_count_the_cheaper_ones() -> None:
    windows = {
        "A": [_window(400, 2500), _window(380, 2600), _window(390, 2550)],
        "B": [_window(370, 2700), _window(385, 2580), _window(360, 2800)],
    }
    result = summary(windows)
    assert result["cpu_difference_per_round_us"] == [-30, 5, -30]
    assert result["cpu_difference_median_us"] == -30
    assert result["rounds_where_b_is_cheaper"] == 2
    assert result["cpu_us_per_request"] == {"A": 390, "B": 370}
    assert result["req_per_s"] == {"A": 2550, "B": 2700}
