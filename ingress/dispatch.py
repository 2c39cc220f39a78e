"""Walks a route's targets with retries, breakers and bulkheads until one answers.

Per target: skip it while its breaker is open; take a bulkhead slot; try; on a retryable
failure (unreachable, timeout, 429, 5xx) wait (Retry-After if the provider said, else
exponential backoff with jitter) and try again up to ``retries.attempts`` times, then move
on to the next target (the next deployment of the model, then the fallback models'). A
non-retryable answer (a 4xx about the request) goes back to the client at once: another
deployment would say the same. Streams count as answered once their first chunk arrived,
so nothing is retried after a byte reached the client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ingress.errors import (
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    RateLimitError,
    UpstreamError,
    UpstreamTimeoutError,
)
from ingress.exchange import ProviderFailure
from ingress.providers.base import Failure, UnsupportedError
from ingress.resilience.backoff import delay
from ingress.routing.router import Target
from ingress.transport import TransportError
from schemas.routing_config import RetrySettings

T = TypeVar("T")
Attempt = dict[str, Any]
Observer = Callable[[str, Target, Attempt], None]


class Dispatcher:
    def __init__(self, retries: RetrySettings, observe: Observer | None = None) -> None:
        self.retries = retries
        self.observe: Observer = observe or (lambda kind, target, attempt: None)

    async def run(
        self, targets: list[Target], call: Callable[[Target], Awaitable[T]], tokens: int = 0
    ) -> tuple[T, Target, list[Attempt]]:
        attempts: list[Attempt] = []
        last: BaseException | None = None
        for target in targets:
            dep = target.deployment
            for retry in range(self.retries.attempts + 1):
                if not dep.breaker.allow():
                    attempts.append(_attempt(target, 0, "circuit open", 0.0))
                    self.observe("breaker_open", target, attempts[-1])
                    break
                started = time.perf_counter()
                try:
                    result = await _guarded(target, call, tokens)
                except OverloadedError as exc:
                    last = exc
                    attempts.append(_attempt(target, 503, exc.message, _ms(started)))
                    break
                except UnsupportedError as exc:
                    last = exc
                    attempts.append(_attempt(target, 400, str(exc), _ms(started)))
                    break
                except (ProviderFailure, TransportError) as exc:
                    last = exc
                    failure = _failure(exc)
                    attempts.append(_attempt(target, failure.status, failure.message, _ms(started)))
                    if failure.status >= 500:
                        dep.breaker.failed()
                    if not failure.retryable:
                        raise _client_error(failure, target, attempts) from exc
                    wait = failure.retry_after_s
                    if wait is not None and wait > self.retries.max_retry_after_s:
                        break  # the provider wants a long pause: fail over instead
                    if retry < self.retries.attempts:
                        self.observe("retry", target, attempts[-1])
                        await asyncio.sleep(delay(self.retries, retry + 1, wait))
                    continue
                dep.breaker.succeeded()
                ms = _ms(started)
                dep.observe_latency(ms)
                attempts.append(_attempt(target, 200, None, ms))
                if len(attempts) > 1:
                    self.observe(
                        "fallback" if target is not targets[0] else "recovered",
                        target,
                        attempts[-1],
                    )
                return result, target, attempts
        raise _final_error(last, targets, attempts)


async def _guarded(target: Target, call: Callable[[Target], Awaitable[T]], tokens: int) -> T:
    """One try inside the deployment's bulkhead; its tokens count as queued meanwhile (what
    the least_tokens strategy weighs; a stream stops counting at its first chunk)."""
    dep = target.deployment
    dep.tokens_in_flight += tokens
    try:
        async with dep.bulkhead.slot():
            return await call(target)
    finally:
        dep.tokens_in_flight -= tokens


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _attempt(target: Target, status: int, error: str | None, ms: float) -> Attempt:
    return {
        "deployment": target.deployment.id,
        "provider": target.deployment.provider.name,
        "model": target.upstream_model,
        "status": status,
        "error": error,
        "latency_ms": ms,
    }


def _failure(exc: ProviderFailure | TransportError) -> Failure:
    if isinstance(exc, ProviderFailure):
        return exc.failure
    return Failure(504 if exc.timed_out else 502, str(exc), "timeout" if exc.timed_out else "")


def _with(error: GatewayError, attempts: list[Attempt]) -> GatewayError:
    error.attempts = attempts
    return error


def _client_error(failure: Failure, target: Target, attempts: list[Attempt]) -> GatewayError:
    where = f"deployment {target.deployment.id}"
    if failure.status in (401, 403):
        error: GatewayError = UpstreamError(
            f"{where} rejected the gateway's provider credentials ({failure.status}:"
            f" {failure.message}); ask your Tollgate admin to check the provider key"
        )
    elif failure.status == 404 and target.deployment.settings.model == "*":
        error = ModelNotFoundError(  # a wildcard passes the caller's name on: theirs to fix
            f"the model `{target.upstream_model}` does not exist upstream ({failure.message})",
            param="model",
        )
    elif failure.status == 404:
        error = UpstreamError(
            f"{where} does not know model `{target.upstream_model}` ({failure.message});"
            " ask your Tollgate admin to check the deployment's upstream_model"
        )
    else:
        error = InvalidRequestError(f"{target.deployment.provider.name}: {failure.message}")
        error.status = failure.status if 400 <= failure.status < 500 else 400
    return _with(error, attempts)


def _final_error(
    last: BaseException | None, targets: list[Target], attempts: list[Attempt]
) -> GatewayError:
    tried = ", ".join(sorted({a["deployment"] for a in attempts})) or "none"
    if last is None:  # every breaker open: nothing was even tried
        wait = min(t.deployment.breaker.retry_in() for t in targets)
        return _with(
            OverloadedError(
                f"every deployment for `{targets[0].public_model}` is failing and paused"
                f" (circuit open); retry in {wait:.0f} s",
                headers={"retry-after": str(max(1, round(wait)))},
            ),
            attempts,
        )
    if isinstance(last, GatewayError):
        return _with(last, attempts)
    if isinstance(last, UnsupportedError):
        return _with(InvalidRequestError(str(last)), attempts)
    failure = _failure(last)  # type: ignore[arg-type]
    summary = f"after {len(attempts)} attempts on {tried}: {failure.message}"
    if failure.status == 429:
        after = failure.retry_after_s
        headers = {"retry-after": str(max(1, round(after)))} if after is not None else {}
        return _with(
            RateLimitError(f"the provider is rate limiting {summary}", headers=headers), attempts
        )
    if failure.status == 504:
        return _with(UpstreamTimeoutError(f"the provider timed out {summary}"), attempts)
    return _with(UpstreamError(f"the provider failed {summary}; retry later"), attempts)
