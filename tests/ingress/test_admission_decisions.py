"""Admission decides in memory from the published meter states plus what this replica
admitted since; these tests feed it states directly (no Kafka) to pin the arithmetic."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from ingress.admission.controller import Admission
from ingress.admission.estimate import estimate
from ingress.admission.local import LocalAdmissions
from ingress.admission.view import AdmissionView
from ingress.auth import Principal
from ingress.errors import BudgetExceededError, OverloadedError, RateLimitError
from schemas.config import TollgateConfig
from schemas.events import Event, MeterProgress, MeterState, ReplicaAlive, now_ms
from schemas.meters import minute_of, period_bounds
from schemas.pricing import Price

ANN = Principal(tenant="acme", key_id="k-ann", user="ann")
BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}


def _admission(**sections: Any) -> tuple[Admission, list[float]]:
    config = TollgateConfig.model_validate(sections)
    lags: list[float] = []
    local = LocalAdmissions(hold_s=30, on_covered=lags.append)
    view = AdmissionView("127.0.0.1:1", local.covered)
    admission = Admission(config, view, local)
    _publish(
        admission, MeterProgress(request_id="", tenant="", partition=0, offset=-1, ts=now_ms())
    )
    return admission, lags


def _publish(admission: Admission, event: Event, offset: int = 0, marked: bool = True) -> None:
    """A state is followed by its partition's progress mark, as the processors send them
    (here one that reflects no further offset than before), unless ``marked`` is false."""
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        "tollgate.admission", 0, offset, 0, 0, None, event.encode(), None, 0, 0, ()
    )
    admission.view.apply(record)
    if isinstance(event, MeterState) and marked:
        reflected, _ = admission.view.progress.get(event.partition, (-1, 0))
        mark = MeterProgress(
            request_id="", tenant="", partition=event.partition, offset=reflected, ts=now_ms()
        )
        _publish(admission, mark, offset + 1)


def _check(admission: Admission, body: dict[str, Any] = BODY, price: Price | None = None):
    return admission.check(admission.decision(ANN, "gpt-4o-mini", "openai-main", body, price))


def test_a_token_budget_refuses_the_request_that_would_pass_it() -> None:
    admission, _ = _admission(budgets=[{"name": "t", "scope": "tenant", "max_tokens": 50}])
    per_request = estimate(BODY, "gpt-4o-mini", None, 1024)[1]
    admitted = 0
    with pytest.raises(BudgetExceededError) as refused:
        while True:
            ticket = _check(admission)
            admitted += 1
            assert int(ticket.headers["x-budget-remaining"]) == 50 - admitted * per_request
    assert admitted == 50 // per_request
    error = refused.value
    assert error.status == 429 and error.body()["error"]["code"] == "budget_exceeded"
    assert error.headers["x-budget-remaining"] == "0"
    assert 1 <= int(error.headers["retry-after"]) <= 31 * 86400
    assert "resets at" in error.message and error.message.count("Z") >= 1


def test_published_spend_counts_only_in_its_own_period() -> None:
    budget = {"name": "usd", "scope": "user", "max_usd": "1.00", "period": "daily"}
    admission, _ = _admission(budgets=[budget])
    start, _ = period_bounds(admission.budgets[0], now_ms())
    last_period = MeterState(
        request_id="",
        tenant="",
        meter="budget:usd:ann",
        kind="budget",
        partition=3,
        period_start=start - 86_400_000,
        spent_usd="5.00",
    )
    _publish(admission, last_period)
    price = Price(model="gpt-4o-mini", input=Decimal("1000"), output=Decimal("1000"))
    ticket = _check(admission, price=price)  # yesterday's $5 does not count today
    assert Decimal(ticket.headers["x-budget-remaining"]) == Decimal("1.00") - ticket.usd
    today = MeterState(
        request_id="",
        tenant="",
        meter="budget:usd:ann",
        kind="budget",
        partition=3,
        period_start=start,
        spent_usd="0.99",
    )
    _publish(admission, today)
    with pytest.raises(BudgetExceededError):
        _check(admission, price=price)


def test_soft_budgets_never_refuse_and_burst_stretches_hard_ones() -> None:
    admission, _ = _admission(
        budgets=[
            {"name": "soft", "scope": "tenant", "max_tokens": 1, "enforcement": "soft"},
            {"name": "hard", "scope": "key", "max_tokens": 100, "burst": 0.5},
        ]
    )
    per_request = estimate(BODY, "gpt-4o-mini", None, 1024)[1]
    admitted = 0
    with pytest.raises(BudgetExceededError) as refused:
        for _ in range(1000):
            _check(admission)
            admitted += 1
    assert admitted == 150 // per_request and "`hard`" in refused.value.message


def test_local_admissions_are_forgotten_once_the_state_reflects_their_offset() -> None:
    admission, lags = _admission(budgets=[{"name": "t", "scope": "tenant", "max_tokens": 10**6}])
    meter = "budget:t:acme"
    first, second = _check(admission), _check(admission)
    assert first.entry is not None and second.entry is not None
    admission.local.acked(first.entry, 0, 41)
    admission.local.acked(second.entry, 0, 42)
    assert admission.local.of(meter).requests == 2
    _publish(
        admission, MeterProgress(request_id="", tenant="", partition=0, offset=41, ts=now_ms())
    )
    assert admission.local.of(meter).requests == 1  # the state now counts the first
    assert admission.local.of(meter).tokens == second.tokens
    _publish(
        admission, MeterProgress(request_id="", tenant="", partition=0, offset=50, ts=now_ms())
    )
    assert admission.local.of(meter).requests == 0 and len(lags) == 2
    # an acknowledgement arriving after the state already covered it is dropped at once
    late = _check(admission)
    assert late.entry is not None
    admission.local.acked(late.entry, 0, 45)
    assert admission.local.of(meter).requests == 0


def test_a_state_waits_for_its_progress_mark_so_nothing_counts_twice() -> None:
    admission, _ = _admission(
        rate_limits=[{"name": "rpm", "scope": "tenant", "requests_per_minute": 2}]
    )
    first = _check(admission)
    assert first.entry is not None
    admission.local.acked(first.entry, 0, 7)
    counted = MeterState(
        request_id="",
        tenant="",
        meter="rate:rpm:acme",
        kind="rate",
        partition=0,
        minute=minute_of(now_ms()),
        requests=[1, 0],
    )
    _publish(admission, counted, marked=False)  # the state counting the first, mark not yet
    assert admission.view.share_of("rate:rpm:acme") == []
    second = _check(admission)  # fits: applied now, the first would have counted twice
    assert second.headers["x-ratelimit-remaining"] == "0"
    _publish(admission, MeterProgress(request_id="", tenant="", partition=0, offset=7, ts=now_ms()))
    assert admission.view.share_of("rate:rpm:acme") == [counted]
    assert admission.local.of("rate:rpm:acme").requests == 1  # only the second is local
    with pytest.raises(RateLimitError):
        _check(admission)


def test_requests_per_minute_counts_the_sliding_window_and_in_flight() -> None:
    admission, _ = _admission(
        rate_limits=[
            {"name": "rpm", "scope": "key", "requests_per_minute": 5},
            {"name": "par", "scope": "tenant", "concurrent": 10},
        ]
    )
    now = now_ms()
    _publish(
        admission,
        MeterState(
            request_id="",
            tenant="",
            meter="rate:rpm:k-ann",
            kind="rate",
            partition=1,
            minute=minute_of(now),
            requests=[3, 0],
        ),
    )
    ticket = _check(admission)
    assert (ticket.headers["x-ratelimit-limit"], ticket.headers["x-ratelimit-remaining"]) == (
        "5",
        "1",
    )
    _check(admission)
    with pytest.raises(RateLimitError) as refused:
        _check(admission)
    assert "5 requests/min" in refused.value.message
    assert 1 <= int(refused.value.headers["retry-after"]) <= 60

    busy, _ = _admission(rate_limits=[{"name": "par", "scope": "tenant", "concurrent": 2}])
    _publish(
        busy,
        MeterState(
            request_id="", tenant="", meter="rate:par:acme", kind="rate", partition=0, in_flight=2
        ),
    )
    with pytest.raises(RateLimitError, match="2 requests in flight"):
        _check(busy)


def test_a_stale_view_fails_closed_or_open_per_config() -> None:
    rules = {"budgets": [{"name": "t", "scope": "tenant", "max_tokens": 10**6}]}
    closed, _ = _admission(**rules, admission={"when_stale": "closed", "max_state_age_s": 1})
    _publish(
        closed, MeterProgress(request_id="", tenant="", partition=0, offset=1, ts=now_ms() - 5_000)
    )
    with pytest.raises(OverloadedError) as refused:
        _check(closed)
    assert refused.value.status == 503 and refused.value.code == "admission_state_stale"
    opened, _ = _admission(**rules, admission={"when_stale": "open", "max_state_age_s": 1})
    _publish(
        opened, MeterProgress(request_id="", tenant="", partition=0, offset=1, ts=now_ms() - 5_000)
    )
    assert _check(opened).tokens > 0


def test_requests_no_rule_covers_are_not_metered() -> None:
    admission, _ = _admission(
        budgets=[{"name": "t", "scope": "tenant", "match": "globex", "max_tokens": 1}]
    )
    ticket = _check(admission)
    assert ticket.entry is None and ticket.headers == {}


def test_the_estimate_is_prompt_plus_the_most_it_may_generate() -> None:
    prompt = estimate({"messages": BODY["messages"]}, "gpt-4o-mini", None, 0 + 1)[1] - 1
    assert estimate({**BODY, "n": 3}, "gpt-4o-mini", None, 1024)[1] == prompt + 30
    assert estimate({"messages": BODY["messages"]}, "gpt-4o-mini", None, 700)[1] == prompt + 700
    embedding = estimate({"input": ["hello world", [1, 2, 3]]}, "text-embedding-3-small", None, 9)
    assert embedding[1] == 2 + 3
    price = Price(model="gpt-4o-mini", input=Decimal("1"), output=Decimal("2"))
    usd, tokens, counted = estimate(BODY, "gpt-4o-mini", price, 1024)
    assert usd == (Decimal(prompt) * 1 + Decimal(10) * 2) / 1_000_000 and tokens == prompt + 10
    assert counted == prompt


def _peer(admission: Admission, ts: int) -> None:
    alive = ReplicaAlive(request_id="", tenant="", replica="peer", interval_ms=1000, ts=ts)
    _publish(admission, alive)


def _budget_state(admission: Admission, meter: str, index: int = 0, **amounts: Any) -> MeterState:
    """A budget meter's state in the current period, as the processors publish it."""
    start, _ = period_bounds(admission.budgets[index], now_ms())
    return MeterState(
        request_id="",
        tenant="",
        meter=meter,
        kind="budget",
        partition=0,
        period_start=start,
        **amounts,
    )


def _reflect(admission: Admission, tickets: list[Any], **amounts: Any) -> None:
    """The processors count ``tickets`` (offsets 0, 1, ... of partition 0) in the tenant
    budget's state, then mark the partition."""
    for offset, ticket in enumerate(tickets):
        admission.local.acked(ticket.entry, 0, offset)
    _publish(admission, _budget_state(admission, "budget:t:acme", **amounts), marked=False)
    mark = MeterProgress(
        request_id="", tenant="", partition=0, offset=len(tickets) - 1, ts=now_ms()
    )
    _publish(admission, mark)


def _admit_until_refused(admission: Admission) -> tuple[list[Any], BudgetExceededError]:
    tickets = []
    while True:
        try:
            tickets.append(_check(admission))
        except BudgetExceededError as refused:
            return tickets, refused


def test_near_the_limit_each_live_replica_keeps_to_half_its_share_of_what_is_left() -> None:
    per_request = estimate(BODY, "gpt-4o-mini", None, 1024)[1]
    rule = {"name": "t", "scope": "tenant", "max_tokens": 10 * per_request}
    alone, _ = _admission(budgets=[rule])
    _peer(alone, now_ms() - 10_000)  # a peer gone quiet for 10 intervals does not count
    assert len(_admit_until_refused(alone)[0]) == 10

    shared, _ = _admission(budgets=[rule])
    _peer(shared, now_ms())
    assert shared.view.live_replicas(shared.replica) == 2
    tickets, refused = _admit_until_refused(shared)
    assert len(tickets) == 2  # 10 left, 2 replicas: a quarter each, until the state counts them
    assert refused.headers["retry-after"] == "1" and "shared by 2" in refused.message
    _reflect(shared, tickets, reserved_tokens=2 * per_request)
    # 8 left: the first may take all of it, then a quarter: 2 in all before waiting again
    assert len(_admit_until_refused(shared)[0]) == 2
