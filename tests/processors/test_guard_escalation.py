"""Escalation per key: attempts and leaks in a sliding window of verdict time, a block at
the threshold, exact on redelivery and on replay after a crash."""

from __future__ import annotations

from typing import Any

from processors.guards.escalation import ALERT_KIND, Escalator
from schemas.events import AlertRaised, Event, GuardVerdict, KeyBlocked
from schemas.guards_config import Escalation

T0 = 1_767_225_600_000
POLICY = Escalation(window_s=600, max_injection_attempts=3, max_leaks=2, block_s=900)


def _attempt(n: int, ts: int, key: str = "k1", score: float = 0.9) -> GuardVerdict:
    return GuardVerdict(
        id=f"00000000-0000-0000-0000-{n:012d}",
        ts=ts,
        request_id=f"r{n}",
        tenant="acme",
        key_id=key,
        model="gpt-4o",
        source="request",
        action="warn",
        injection_score=score,
    )


def _leak(n: int, ts: int, entities: list[dict[str, Any]]) -> GuardVerdict:
    return GuardVerdict(
        ts=ts,
        request_id=f"r{n}",
        tenant="acme",
        key_id="k1",
        model="gpt-4o",
        source="response",
        entities=entities,
    )


def _run(escalator: Escalator, verdicts: list[GuardVerdict]) -> list[Event]:
    return [event for v in verdicts for event in escalator.apply(v)]


def test_the_threshold_within_the_window_blocks_the_key_and_alerts_once() -> None:
    table: dict[str, Any] = {}
    escalator = Escalator(table, POLICY)
    sent = _run(escalator, [_attempt(i, T0 + i * 1000) for i in range(5)])
    assert [type(e) for e in sent] == [KeyBlocked, AlertRaised]
    block, alert = sent
    assert isinstance(block, KeyBlocked) and isinstance(alert, AlertRaised)
    assert (block.key_id, block.action, block.reason, block.count) == (
        "k1",
        "block",
        "injection",
        3,
    )
    assert block.since_ms == T0 + 2000 and block.until_ms == T0 + 2000 + 900_000
    assert alert.kind == ALERT_KIND and alert.subject == "key:k1" and alert.tenant == "acme"
    assert alert.severity == "critical" and alert.limit == 3
    assert "3 prompt-injection attempts within 600 s; blocked until" in alert.message


def test_attempts_spread_wider_than_the_window_never_block() -> None:
    escalator = Escalator({}, POLICY)
    # two in each 10-minute stretch, never three within 600 s
    times = [T0, T0 + 1000, T0 + 601_000, T0 + 602_000, T0 + 1_203_000, T0 + 1_204_000]
    assert _run(escalator, [_attempt(i, ts) for i, ts in enumerate(times)]) == []


def test_below_the_score_and_other_keys_do_not_count() -> None:
    escalator = Escalator({}, POLICY)
    low = [_attempt(i, T0 + i, score=0.69) for i in range(5)]
    spread = [_attempt(10 + i, T0 + i, key=f"k{i}") for i in range(5)]
    assert _run(escalator, low + spread) == []
    blocked_inline = GuardVerdict(
        request_id="b", tenant="acme", key_id="kb", model="m", source="request", action="block"
    )
    blocked_for_pii = GuardVerdict(
        request_id="c",
        tenant="acme",
        key_id="kc",
        model="m",
        source="request",
        action="block",
        inline_entities={"CREDIT_CARD": 1},
    )
    strict = Escalator({}, POLICY.model_copy(update={"max_injection_attempts": 1}))
    assert [type(e) for e in strict.apply(blocked_inline)] == [KeyBlocked, AlertRaised]
    assert strict.apply(blocked_for_pii) == []


def test_redelivered_verdicts_count_once() -> None:
    escalator = Escalator({}, POLICY)
    twice = [_attempt(i, T0 + i) for i in (0, 1)] * 4
    assert _run(escalator, twice) == []
    assert len(_run(escalator, [_attempt(2, T0 + 2)])) == 2


def test_replay_after_a_crash_sends_the_same_block_again_and_nothing_more() -> None:
    verdicts = [_attempt(i, T0 + i * 1000) for i in range(4)]
    table: dict[str, Any] = {}
    first = _run(Escalator(table, POLICY), verdicts)
    # the worker died after its table writes, before its offsets were committed
    again = _run(Escalator(table, POLICY), verdicts)
    assert [e.id for e in again] == [e.id for e in first]
    assert [e.to_dict() for e in again] == [e.to_dict() for e in first]
    # from scratch (a new table, the whole log again): the same ids
    fresh = _run(Escalator({}, POLICY), verdicts)
    assert [e.id for e in fresh] == [e.id for e in first]


def test_counting_restarts_after_a_block() -> None:
    escalator = Escalator({}, POLICY)
    first = _run(escalator, [_attempt(i, T0 + i) for i in range(3)])
    assert len(first) == 2
    assert _run(escalator, [_attempt(i, T0 + i) for i in (3, 4)]) == []
    second = _run(escalator, [_attempt(5, T0 + 5)])
    assert len(second) == 2 and second[0].id != first[0].id


def test_leaks_count_presidio_findings_at_the_score_and_inline_ones() -> None:
    policy = POLICY.model_copy(update={"action": "throttle", "throttle_rpm": 4})
    escalator = Escalator({}, policy)
    weak = _leak(1, T0, [{"type": "PHONE", "score": 0.4, "count": 1}])
    url = _leak(2, T0 + 1, [{"type": "URL", "score": 0.9, "count": 3}])
    assert _run(escalator, [weak, url]) == []
    card = _leak(3, T0 + 2, [{"type": "CREDIT_CARD", "score": 1.0, "count": 1}])
    inline = GuardVerdict(
        ts=T0 + 3,
        request_id="r4",
        tenant="acme",
        key_id="k1",
        model="m",
        source="response",
        inline_entities={"EMAIL": 2},
    )
    sent = _run(escalator, [card, inline])
    block = sent[0]
    assert isinstance(block, KeyBlocked)
    assert (block.reason, block.action, block.rpm, block.count) == ("leak", "throttle", 4, 2)
    assert isinstance(sent[1], AlertRaised) and sent[1].severity == "warning"
    assert "throttled to 4 requests/min" in sent[1].message


def test_a_verdict_older_than_the_window_is_ignored() -> None:
    table: dict[str, Any] = {}
    escalator = Escalator(table, POLICY)
    _run(escalator, [_attempt(1, T0 + 700_000)])
    late = [_attempt(i, T0 + i) for i in (2, 3, 4)]
    assert _run(escalator, late) == []
    assert table["k:k1"]["attempts"] == [[T0 + 700_000, "r1"]]
