"""Breaker states, bulkhead limits, backoff bounds, and the dispatcher's retry/failover
decisions, with attempts that fail the way providers fail."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from ingress.dispatch import Dispatcher
from ingress.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    RateLimitError,
    UpstreamError,
)
from ingress.exchange import ProviderFailure
from ingress.providers.base import Failure
from ingress.resilience.backoff import delay
from ingress.resilience.breaker import Breaker, BreakerState
from ingress.resilience.bulkhead import Bulkhead
from ingress.routing.router import RouteContext, Target
from ingress.transport import TransportError
from schemas.routing_config import BreakerSettings, RetrySettings
from tests.ingress.routing.conftest import make_router

FAST = RetrySettings(attempts=2, backoff_initial_s=0.001, backoff_max_s=0.002)


def test_breaker_opens_half_opens_and_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    breaker = Breaker(BreakerSettings(failure_threshold=3, cooldown_s=10, half_open_probes=1))
    for _ in range(2):
        breaker.failed()
    assert breaker.allow() and breaker.state is BreakerState.CLOSED
    breaker.failed()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    assert breaker.retry_in() == pytest.approx(10)
    now[0] += 10
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one probe only
    breaker.failed()  # the probe failed: open again
    assert breaker.state is BreakerState.OPEN
    now[0] += 10
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


async def test_bulkhead_caps_concurrency_then_queue_then_503() -> None:
    bulkhead = Bulkhead("d", max_concurrency=2, queue_limit=1, queue_timeout_s=0.2)
    release = asyncio.Event()
    peak = 0

    async def hold() -> None:
        nonlocal peak
        async with bulkhead.slot():
            peak = max(peak, bulkhead.in_flight)
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(3)]  # 2 run, 1 queues
    await asyncio.sleep(0.01)
    assert (bulkhead.in_flight, bulkhead.waiting) == (2, 1)
    with pytest.raises(OverloadedError, match="at capacity"):
        async with bulkhead.slot():
            pass
    release.set()
    await asyncio.gather(*holders)
    assert peak == 2 and bulkhead.in_flight == 0
    blocker = Bulkhead("d", max_concurrency=1, queue_limit=5, queue_timeout_s=0.05)
    async with blocker.slot():
        with pytest.raises(OverloadedError, match="no free slot"):
            async with blocker.slot():
                pass


def test_backoff_is_bounded_and_honours_retry_after() -> None:
    settings = RetrySettings(backoff_initial_s=0.1, backoff_max_s=1.0)
    assert delay(settings, 1, 7.0) == 7.0
    assert all(0 <= delay(settings, 1, None) <= 0.1 for _ in range(100))
    assert all(0 <= delay(settings, 10, None) <= 1.0 for _ in range(100))


def targets(n: int = 2, **resilience: Any) -> list[Target]:
    router = make_router(
        [{"model": "m", "provider": f"p{i}"} for i in range(n)],
        resilience=resilience or None,
        strategy="round_robin",
    )
    return router.plan("m", RouteContext("t", {}, {}))


def script(outcomes: dict[str, list[Any]]) -> tuple[Any, list[str]]:
    """An attempt function answering from a per-deployment list of outcomes."""
    calls: list[str] = []

    async def attempt(target: Target) -> str:
        calls.append(target.deployment.id)
        outcome = outcomes[target.deployment.id].pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return str(outcome)

    return attempt, calls


def fail(status: int, retry_after: float | None = None) -> ProviderFailure:
    return ProviderFailure(Failure(status, f"HTTP {status}", retry_after_s=retry_after))


async def test_retries_a_5xx_then_succeeds_on_the_same_deployment() -> None:
    attempt, calls = script({"p0/m": [fail(503), "ok"], "p1/m": []})
    result, _target, attempts = await Dispatcher(FAST).run(targets(), attempt)
    assert (result, calls) == ("ok", ["p0/m", "p0/m"])
    assert [a["status"] for a in attempts] == [503, 200]


async def test_exhausted_retries_fail_over_to_the_next_deployment() -> None:
    attempt, calls = script(
        {"p0/m": [fail(500), TransportError("connect", "down"), fail(502)], "p1/m": ["ok"]}
    )
    _result, target, _attempts = await Dispatcher(FAST).run(targets(), attempt)
    assert target.deployment.id == "p1/m" and calls == ["p0/m"] * 3 + ["p1/m"]


async def test_client_errors_are_not_retried() -> None:
    attempt, calls = script({"p0/m": [fail(400)], "p1/m": ["ok"]})
    with pytest.raises(InvalidRequestError) as caught:
        await Dispatcher(FAST).run(targets(), attempt)
    assert calls == ["p0/m"] and caught.value.status == 400 and len(caught.value.attempts) == 1


async def test_retry_after_is_honoured_and_a_long_one_fails_over() -> None:
    attempt, calls = script({"p0/m": [fail(429, 0.3), "ok"], "p1/m": []})
    started = time.monotonic()
    await Dispatcher(FAST).run(targets(), attempt)
    assert time.monotonic() - started >= 0.3 and calls == ["p0/m", "p0/m"]
    attempt, _calls = script({"p0/m": [fail(429, 120)], "p1/m": ["ok"]})
    started = time.monotonic()
    _result, target, _ = await Dispatcher(FAST).run(targets(), attempt)
    assert target.deployment.id == "p1/m" and time.monotonic() - started < 1


async def test_throttled_everywhere_is_a_429_with_retry_after() -> None:
    attempt, _ = script({"p0/m": [fail(429, 0.01)] * 3, "p1/m": [fail(429, 0.01)] * 3})
    with pytest.raises(RateLimitError) as caught:
        await Dispatcher(FAST).run(targets(), attempt)
    assert caught.value.headers["retry-after"] == "1"
    assert len(caught.value.attempts) == 6


async def test_open_breakers_are_skipped_then_503() -> None:
    plan = targets(breaker={"failure_threshold": 2, "cooldown_s": 60})
    attempt, calls = script({"p0/m": [fail(500)] * 3, "p1/m": [fail(500)] * 3})
    with pytest.raises(UpstreamError):
        await Dispatcher(FAST).run(plan, attempt)
    assert all(t.deployment.breaker.state is BreakerState.OPEN for t in plan)
    calls.clear()
    with pytest.raises(OverloadedError) as caught:
        await Dispatcher(FAST).run(plan, attempt)
    assert calls == [] and int(caught.value.headers["retry-after"]) > 0


async def test_upstream_404_is_the_callers_on_a_wildcard_and_the_admins_otherwise() -> None:
    wildcard = make_router([{"model": "*", "provider": "local"}]).plan(
        "llama-typo", RouteContext("t", {}, {})
    )
    attempt, _ = script({"local/*": [fail(404)]})
    with pytest.raises(ModelNotFoundError):
        await Dispatcher(FAST).run(wildcard, attempt)
    attempt, _ = script({"p0/m": [fail(404)], "p1/m": []})
    with pytest.raises(UpstreamError, match="upstream_model"):
        await Dispatcher(FAST).run(targets(), attempt)
