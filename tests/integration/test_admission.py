"""Budgets and rate limits end to end, on real Kafka: the ingress admits from the state the
processors publish, refuses past the limit within the state lag, admits again after a
reset, raises a threshold alert once, and recovers its counts exactly after a crash."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from infra.kafka.broker import LocalKafka
from infra.stack import Stack
from schemas.config import TollgateConfig
from schemas.events import (
    AlertRaised,
    ReplicaAlive,
    decode,
)
from schemas.meters import period_bounds
from schemas.topics import ADMISSION, ALERTS, REQUESTS
from tests.events import answered
from tests.harness import TEST_KEY, start_stack, write_config
from tests.kafka_io import collect, latest_meter_states, produce

pytestmark = pytest.mark.integration
PERIOD_S = 12
BUDGET_TOKENS = 2000
RPM = 5
RATED_KEY = TEST_KEY + "-rated"
SHARED_KEY = TEST_KEY + "-shared"
SHARED_TOKENS = 2000


@pytest.fixture(scope="module")
def stack(kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("admission")
    tenant, other, rated = f"tenant-{home.name}", f"other-{home.name}", f"rated-{home.name}"
    shared = f"shared-{home.name}"
    config, path = write_config(
        home,
        kafka.bootstrap_servers,
        keys=[
            {"key": TEST_KEY, "tenant": tenant, "team": "qa"},
            {"key": TEST_KEY + "-2", "tenant": other},
            {"key": RATED_KEY, "tenant": rated},
            {"key": SHARED_KEY, "tenant": shared},
        ],
        budgets=[
            {
                "name": f"tokens-{home.name}",
                "scope": "tenant",
                "match": tenant,
                "max_tokens": BUDGET_TOKENS,
                "period": "custom",
                "period_s": PERIOD_S,
                "thresholds": [0.5],
            },
            {
                "name": f"books-{home.name}",
                "scope": "tenant",
                "match": other,
                "max_tokens": 10_000_000,
                "period": "monthly",
            },
            {
                "name": f"shared-{home.name}",
                "scope": "tenant",
                "match": shared,
                "max_tokens": SHARED_TOKENS,
                "period": "monthly",
            },
        ],
        admission={"share_wait_s": 5.0},  # generous for a loaded CI machine
        rate_limits=[
            {
                "name": f"rpm-{home.name}",
                "scope": "tenant",
                "match": rated,
                "requests_per_minute": RPM,
            }
        ],
    )
    running = start_stack(config, path)
    try:
        yield running
    finally:
        running.down()


def _budget(config: TollgateConfig, index: int = 0) -> Any:
    return config.budgets[index]


async def _ask(config: TollgateConfig, key: str, max_tokens: int = 8) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"http://{config.ingress.host}:{config.ingress.port}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={
                "model": "gpt-4o-mini",
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": "count to three"}],
            },
        )


def _spent_elsewhere(tenant: str, tokens: int) -> list[Any]:
    """What another ingress replica would have published for one big request."""
    rid = f"elsewhere-{time.monotonic_ns()}"
    usage = {"prompt_tokens": tokens // 2, "completion_tokens": tokens - tokens // 2}
    message = [{"role": "user", "content": "x"}]
    return [*answered(tenant, rid, usage=usage, messages=message, key_id="another-replica")]


async def _start_of_a_fresh_period(budget: Any) -> int:
    now = int(time.time() * 1000)
    start, end = period_bounds(budget, now)
    if end - now < (PERIOD_S - 3) * 1000:
        await asyncio.sleep((end - now) / 1000 + 0.05)
        start, end = period_bounds(budget, int(time.time() * 1000))
    return start


async def test_rate_limit_refuses_past_requests_per_minute(stack: Stack) -> None:
    config = stack.config
    remaining = []
    for _ in range(RPM):
        answer = await _ask(config, RATED_KEY)
        assert answer.status_code == 200, answer.text
        remaining.append(int(answer.headers["x-ratelimit-remaining"]))
        assert answer.headers["x-ratelimit-limit"] == str(RPM)
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0
    refused = await _ask(config, RATED_KEY)
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining"] == "0"


async def test_spend_elsewhere_exhausts_the_budget_within_the_lag_then_the_period_resets(
    stack: Stack,
) -> None:
    config = stack.config
    budget = _budget(config)
    tenant = config.keys[0].tenant
    period = await _start_of_a_fresh_period(budget)
    first = await _ask(config, TEST_KEY)
    assert first.status_code == 200, first.text
    assert 0 < int(first.headers["x-budget-remaining"]) < BUDGET_TOKENS
    reset = first.headers["x-budget-period-reset"]
    assert reset.endswith("Z")

    await produce(
        config.kafka.bootstrap_servers, REQUESTS.name, _spent_elsewhere(tenant, BUDGET_TOKENS)
    )
    published = time.monotonic()
    refused_after = None
    while time.monotonic() - published < 5:
        answer = await _ask(config, TEST_KEY, max_tokens=1)
        if answer.status_code == 429:
            refused_after = time.monotonic() - published
            break
        await asyncio.sleep(0.01)
    assert refused_after is not None, "the budget was never enforced"
    assert refused_after < 2.0, f"refused only {refused_after:.2f} s after the spend"
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exceeded")
    wait = int(answer.headers["retry-after"])
    assert 1 <= wait <= PERIOD_S

    await asyncio.sleep(max(period / 1000 + PERIOD_S - time.time(), 0) + 0.3)
    again = await _ask(config, TEST_KEY)
    assert again.status_code == 200, again.text

    alerts = await collect(
        config.kafka.bootstrap_servers,
        ALERTS.name,
        lambda r: (
            r.value is not None
            and f"tokens-{config.home.name}" in r.value.decode()
            and f'"period_start":{period}' in r.value.decode()
        ),
        expected=2,
        wait_s=20,
        linger=3,
    )
    kinds = sorted(a.kind for a in map(_alert, alerts))
    assert kinds == ["budget.exhausted", "budget.threshold"], kinds


def _alert(record: Any) -> AlertRaised:
    event = decode(record.value)
    assert isinstance(event, AlertRaised)
    return event


async def _meter_tokens(config: TollgateConfig, meter: str) -> int:
    shares = await latest_meter_states(config.kafka.bootstrap_servers, meter)
    return sum(s.tokens for s in shares)


async def test_a_killed_worker_recovers_its_counts_exactly(stack: Stack) -> None:
    config = stack.config
    meter = f"budget:books-{config.home.name}:{config.keys[1].tenant}"
    served = 0

    async def traffic(n: int) -> None:
        nonlocal served
        for _ in range(n):
            answer = await _ask(config, TEST_KEY + "-2")
            assert answer.status_code == 200, answer.text
            served += answer.json()["usage"]["total_tokens"]

    await traffic(3)
    worker = stack.stage("worker").process
    assert worker is not None
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    await traffic(2)
    await asyncio.to_thread(stack.start_stage, "worker")
    await traffic(2)
    deadline = time.monotonic() + 60
    counted = -1
    while time.monotonic() < deadline:
        counted = await _meter_tokens(config, meter)
        if counted >= served:
            break
    await asyncio.sleep(2)
    assert await _meter_tokens(config, meter) == served
    assert counted == served


def _state_age(metrics: str) -> float:
    line = next(m for m in metrics.splitlines() if m.startswith("tollgate_admission_state_age"))
    return float(line.split()[-1])


async def test_requests_past_a_replicas_share_wait_for_the_state_instead_of_a_429(
    stack: Stack,
) -> None:
    """With a peer alive, this replica keeps its unreflected admissions to a quarter of
    what is left: 500 of 2,000 tokens, about 25 of these requests. 40 at once: the ones
    past the share are held until the processors' state counts the first ones, then
    admitted; none is refused, since the budget has room for all of them (with
    ``share_wait_s: 0`` about 15 would be answered 429)."""
    config = stack.config
    peer = ReplicaAlive(request_id="", tenant="", replica="peer", interval_ms=3000)
    await produce(
        config.kafka.bootstrap_servers, ADMISSION.name, [(b"replica:peer", peer.encode())]
    )
    base = f"http://{config.ingress.host}:{config.ingress.port}"
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(200):  # the peer's heartbeat read, the processors reporting
            metrics = (await client.get(f"{base}/metrics")).text
            if "tollgate_admission_replicas 2.0" in metrics and _state_age(metrics) < 1:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"no peer, or a stale state: {_state_age(metrics)} s old")
        answers = await asyncio.gather(*(_ask(config, SHARED_KEY) for _ in range(40)))
        metrics = (await client.get(f"{base}/metrics")).text
    statuses = [a.status_code for a in answers]
    assert statuses == [200] * 40, [a.text for a in answers if a.status_code != 200][:2]
    held = next(
        line
        for line in metrics.splitlines()
        if line.startswith('tollgate_admission_share_wait_seconds_count{outcome="admitted"}')
    )
    assert float(held.split()[-1]) >= 1, held  # how many depends on the state's pace
    assert 'outcome="refused"' not in metrics
    # the peer goes: a last heartbeat that ends at once, so later tests see one replica
    gone = ReplicaAlive(request_id="", tenant="", replica="peer", interval_ms=1)
    await produce(
        config.kafka.bootstrap_servers, ADMISSION.name, [(b"replica:peer", gone.encode())]
    )
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(200):
            if "tollgate_admission_replicas 1.0" in (await client.get(f"{base}/metrics")).text:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the peer's last heartbeat was never read")
