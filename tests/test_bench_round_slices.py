"""The admission bench's split of its lag by time into the round, and by round."""

from __future__ import annotations

from tests.bench.admission_overshoot import Stamp, by_round, by_time_into_round


def test_each_round_is_sliced_from_its_own_first_admission() -> None:
    stamps: list[Stamp] = [
        ("round-a", 1_000, 1_040, 1_200),  # first of round a: 0 ms in
        ("round-a", 1_150, 1_160, 1_230),  # 150 ms in
        ("round-b", 9_000, 9_010, None),  # first of round b; no progress covered it
        ("round-b", 9_050, 9_070, 9_100),  # 50 ms in
        ("round-b", 9_700, 9_705, 9_745),  # 700 ms in
    ]
    sliced = by_time_into_round(stamps)
    assert list(sliced) == ["0-100ms", "100-200ms", "500ms-"]
    first = sliced["0-100ms"]
    assert first["requests"] == 3
    assert (first["publish_p50_ms"], first["publish_p99_ms"]) == (20, 40)
    assert (first["process_p50_ms"], first["process_p99_ms"]) == (160, 160)  # 30 and 160
    assert sliced["100-200ms"] == {
        "requests": 1,
        "publish_p50_ms": 10,
        "publish_p99_ms": 10,
        "process_p50_ms": 70,
        "process_p99_ms": 70,
    }
    assert sliced["500ms-"]["requests"] == 1


def test_rounds_are_split_in_the_order_they_ran() -> None:
    stamps: list[Stamp] = [
        ("round-b", 9_050, 9_070, 9_100),
        ("round-a", 1_000, 1_040, 1_200),
        ("round-b", 9_000, 9_010, None),  # no progress covered it: publishing only
        ("round-a", 1_150, 1_160, 1_230),
    ]
    first, second = by_round(stamps)
    assert first == {
        "requests": 2,
        "publish_p50_ms": 40,  # of 10 and 40: the upper one, as every quantile here
        "publish_p99_ms": 40,
        "process_p50_ms": 160,
        "process_p99_ms": 160,
    }
    assert (second["requests"], second["publish_p50_ms"], second["process_p99_ms"]) == (2, 20, 30)
