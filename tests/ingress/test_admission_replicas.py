"""Several replicas spending one budget while the processors' state lags: how far past it?

In process: N real ``Admission`` objects, each with its own view and ledger, admit
requests in a seeded random order; every admission is an event at the next offset of one
partition, and the "processors" reflect the log in offset order, in random steps, into
every view (as ``tollgate.admission`` does). The issue's bound: overshoot at most one
request per replica.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from ingress.admission import controller
from ingress.admission import view as view_module
from ingress.admission.controller import Admission
from ingress.admission.estimate import estimate
from ingress.admission.local import LocalAdmissions
from ingress.admission.view import AdmissionView
from ingress.auth import Principal
from ingress.errors import BudgetExceededError, RateLimitError
from schemas.config import TollgateConfig
from schemas.events import MeterProgress, MeterState, ReplicaAlive
from schemas.limits_config import BudgetSettings
from schemas.meters import minute_of, period_bounds
from schemas.pricing import Price
from tests.ingress.test_admission_decisions import _publish

ANN = Principal(tenant="acme", key_id="k-ann", user="ann")
BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
PRICE = Price(model="gpt-4o-mini", input=Decimal("1"), output=Decimal("2"))
ONE = estimate(BODY, "gpt-4o-mini", PRICE, 1024)[0]
LIMIT = 100


NOW = 1_767_225_630_000  # mid-minute, fixed: a sliding window must not move under the test


def _replicas(n: int, limit: str) -> list[Admission]:
    rules: dict[str, list[dict[str, object]]]
    if limit == "budget":
        rules = {"budgets": [{"name": "t", "scope": "tenant", "max_usd": str(ONE * LIMIT)}]}
    else:
        rules = {"rate_limits": [{"name": "t", "scope": "tenant", "requests_per_minute": LIMIT}]}
    config = TollgateConfig.model_validate(rules)
    replicas = []
    for i in range(n):
        local = LocalAdmissions(hold_s=30)
        replicas.append(
            Admission(config, AdmissionView("127.0.0.1:1", local.covered), local, f"r{i}")
        )
    for admission in replicas:
        _publish(admission, MeterProgress(request_id="", tenant="", partition=0, offset=-1))
        for i in range(n):
            alive = ReplicaAlive(
                request_id="", tenant="", replica=f"r{i}", interval_ms=1000, ts=NOW
            )
            _publish(admission, alive)
    return replicas


def _state(limit: str, reflected: int) -> MeterState:
    """What the processors publish once the first ``reflected`` requests are counted."""
    if limit == "budget":
        start, _ = period_bounds(BudgetSettings(name="t", scope="tenant", max_usd=ONE), NOW)
        return MeterState(
            request_id="",
            tenant="",
            meter="budget:t:acme",
            kind="budget",
            partition=0,
            period_start=start,
            reserved_usd=str(ONE * reflected),
        )
    return MeterState(
        request_id="",
        tenant="",
        meter="rate:t:acme",
        kind="rate",
        partition=0,
        minute=minute_of(NOW),
        requests=[reflected, 0],
    )


def _spend(n: int, seed: int, reflect_chance: float, limit: str = "budget") -> int:
    """Requests admitted in all, each costing exactly its estimate (the worst case)."""
    rng = random.Random(seed)
    replicas = _replicas(n, limit)
    log = 0  # events on the partition so far
    reflected = -1
    for _ in range(2000):
        if rng.random() < reflect_chance and reflected < log - 1:
            reflected = rng.randint(reflected + 1, log - 1)  # in offset order, any step
            mark = MeterProgress(request_id="", tenant="", partition=0, offset=reflected, ts=NOW)
            for admission in replicas:
                _publish(admission, _state(limit, reflected + 1))
                _publish(admission, mark)
            continue
        admission = rng.choice(replicas)
        try:
            ticket = admission.check(admission.decision(ANN, "gpt-4o-mini", None, BODY, PRICE))
        except (BudgetExceededError, RateLimitError):
            continue
        assert ticket.entry is not None
        admission.local.acked(ticket.entry, 0, log)
        log += 1
    return log


@pytest.fixture(autouse=True)
def _frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controller, "now_ms", lambda: NOW)
    monkeypatch.setattr(view_module, "now_ms", lambda: NOW)


@pytest.mark.parametrize("limit", ["budget", "requests_per_minute"])
@pytest.mark.parametrize("replicas", [2, 3])
@pytest.mark.parametrize("reflect_chance", [0.02, 0.1, 0.3])
def test_replicas_overshoot_by_at_most_one_request_each(
    replicas: int, reflect_chance: float, limit: str
) -> None:
    for seed in range(20):
        admitted = _spend(replicas, seed, reflect_chance, limit)
        assert admitted <= LIMIT + replicas, f"seed {seed}: {admitted} admitted"


@pytest.mark.parametrize("limit", ["budget", "requests_per_minute"])
def test_the_limit_is_still_reached(limit: str) -> None:
    """The headroom slows replicas near the limit; it must not strand what is left."""
    for seed in range(10):
        assert _spend(2, seed, 0.1, limit) >= LIMIT
