"""A request refused only for this replica's share waits for the state (``Admission.admit``)
instead of a 429 the client would retry into the same question; one refused for good does
not wait, and one whose client leaves stops waiting. States are fed directly, as in
``test_admission_decisions``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ingress.admission.controller import GONE_CHECK_S, Admission, Ticket
from ingress.admission.estimate import estimate
from ingress.auth import Principal
from ingress.errors import BudgetExceededError, ClientClosedError, RateLimitError
from schemas.events import MeterProgress, now_ms
from tests.ingress.test_admission_decisions import (
    ANN,
    BODY,
    _admission,
    _budget_state,
    _check,
    _peer,
    _publish,
    _reflect,
)

PER_REQUEST = estimate(BODY, "gpt-4o-mini", None, 1024)[1]
TEN = {"name": "t", "scope": "tenant", "max_tokens": 10 * PER_REQUEST}
TEN_PER_MINUTE = {"name": "t", "scope": "tenant", "requests_per_minute": 10}


def _shared(wait_s: float, **rules: Any) -> tuple[Admission, list[tuple[str, float]], list[Ticket]]:
    """One of two live replicas, with two admissions the state does not count yet: 10 left
    and 2 replicas, so a quarter each: the third request is past this replica's share."""
    admission, _ = _admission(admission={"share_wait_s": wait_s}, **rules)
    waits: list[tuple[str, float]] = []
    admission.on_share_wait = lambda outcome, s: waits.append((outcome, s))
    _peer(admission, now_ms())
    tickets = [_check(admission) for _ in range(2)]
    return admission, waits, tickets


def _admit(
    admission: Admission, gone: Callable[[], Awaitable[bool]] | None = None
) -> asyncio.Task[Ticket]:
    decide = admission.decision(ANN, "gpt-4o-mini", "openai-main", BODY, None)
    return asyncio.create_task(admission.admit(decide, gone))


class Client:
    """Answers ``gone`` as a request's ``is_disconnected`` would, and counts the asks."""

    def __init__(self) -> None:
        self.left = False
        self.asked = 0

    async def gone(self) -> bool:
        self.asked += 1
        return self.left


async def test_a_request_past_its_share_waits_for_the_state_and_is_admitted() -> None:
    admission, waits, tickets = _shared(5.0, budgets=[TEN])
    with pytest.raises(BudgetExceededError):
        _check(admission)  # decided at once: the share is taken
    client = Client()
    held = _admit(admission, client.gone)
    await asyncio.sleep(0.1)
    assert not held.done() and admission.share_waiting == 1
    _reflect(admission, tickets, reserved_tokens=2 * PER_REQUEST)  # both counted
    ticket = await asyncio.wait_for(held, 1.0)
    assert ticket.entry is not None and ticket.headers["x-budget-remaining"]
    assert admission.share_waiting == 0 and client.asked >= 1  # still there: admitted
    assert len(waits) == 1 and waits[0][0] == "admitted" and 0.1 <= waits[0][1] < 1.0


async def test_a_held_request_whose_client_leaves_stops_waiting() -> None:
    """No progress mark comes: the request still notices within ``GONE_CHECK_S``, is not
    admitted, and frees its place among the held."""
    admission, waits, _ = _shared(5.0, budgets=[TEN])
    client = Client()
    held = _admit(admission, client.gone)
    await asyncio.sleep(0.1)
    assert not held.done() and admission.share_waiting == 1
    client.left = True
    left_at = time.monotonic()
    with pytest.raises(ClientClosedError, match="nothing was sent upstream"):
        await asyncio.wait_for(held, 2.0)
    assert time.monotonic() - left_at < GONE_CHECK_S + 0.15
    assert admission.share_waiting == 0
    assert [outcome for outcome, _ in waits] == ["left"]
    with pytest.raises(BudgetExceededError, match="shared by 2"):
        _check(admission)  # it took nothing: the share is as before


@pytest.mark.parametrize(
    ("rule", "refusal"),
    [
        ({"budgets": [TEN]}, BudgetExceededError),
        ({"rate_limits": [TEN_PER_MINUTE]}, RateLimitError),
    ],
)
async def test_a_share_the_state_never_frees_is_refused_after_share_wait_s(
    rule: dict[str, Any], refusal: type[Exception]
) -> None:
    admission, waits, _ = _shared(0.3, **rule)
    started = time.monotonic()
    task = _admit(admission)
    # progress marks that free nothing wake the request, which decides again and waits on
    for _ in range(3):
        await asyncio.sleep(0.05)
        _publish(admission, MeterProgress(request_id="", tenant="", partition=0, offset=-1))
    with pytest.raises(refusal) as refused:
        await task
    waited = time.monotonic() - started
    assert 0.3 <= waited < 1.0
    assert refused.value.headers["retry-after"] == "1"  # type: ignore[attr-defined]
    assert "shared by" in str(refused.value)
    assert waits == [("refused", pytest.approx(0.3, abs=0.1))]


async def test_with_share_wait_0_the_share_is_refused_at_once() -> None:
    admission, waits, _ = _shared(0.0, budgets=[TEN])
    started = time.monotonic()
    with pytest.raises(BudgetExceededError, match="shared by 2"):
        await _admit(admission)
    assert time.monotonic() - started < 0.05 and waits == []


async def test_a_spent_meter_refuses_at_once_though_another_is_only_shared() -> None:
    """Bob's two admissions took this replica's share of the tenant's budget; Ann's own
    budget is spent by the published state. Ann gets the spent refusal at once, no wait."""
    two = {"name": "u", "scope": "user", "match": "ann", "max_tokens": 2 * PER_REQUEST}
    admission, _ = _admission(admission={"share_wait_s": 5.0}, budgets=[TEN, two])
    waits: list[tuple[str, float]] = []
    admission.on_share_wait = lambda outcome, s: waits.append((outcome, s))
    _peer(admission, now_ms())
    bob = Principal(tenant="acme", key_id="k-bob", user="bob")
    for _ in range(2):
        admission.check(admission.decision(bob, "gpt-4o-mini", "openai-main", BODY, None))
    _publish(admission, _budget_state(admission, "budget:u:ann", 1, tokens=2 * PER_REQUEST))
    started = time.monotonic()
    with pytest.raises(BudgetExceededError, match=r"budget `u` .* is spent") as refused:
        await _admit(admission)
    assert time.monotonic() - started < 0.05 and waits == []
    assert refused.value.headers["x-budget-remaining"] == "0"
    assert int(refused.value.headers["retry-after"]) > 1
    with pytest.raises(BudgetExceededError, match="shared by 2"):
        admission.check(
            admission.decision(bob, "gpt-4o-mini", "openai-main", BODY, None)
        )  # the tenant's share
