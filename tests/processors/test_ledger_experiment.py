"""Tagged calls are metered against their experiment's budget."""

from __future__ import annotations

from decimal import Decimal
from typing import TypedDict

from processors.metering.ledger import Ledger, Rules
from schemas.events import RequestReceived, ResponseCompleted
from schemas.limits_config import BudgetSettings
from schemas.pricing import build_price_book

T0 = 1_767_225_600_000
RULES = Rules(
    budgets=(
        BudgetSettings(name="exp", scope="experiment", max_usd=Decimal("5")),
        BudgetSettings(name="acme", scope="tenant", match="acme", max_usd=Decimal("5")),
    )
)


class _Common(TypedDict):
    """The fields both events of a call share."""

    request_id: str
    tenant: str
    key_id: str
    model: str


def _call(rid: str, tenant: str, experiment: str) -> list[RequestReceived | ResponseCompleted]:
    common: _Common = {"request_id": rid, "tenant": tenant, "key_id": "k", "model": "gpt-4o-mini"}
    return [
        RequestReceived(**common, endpoint="/v1/chat/completions", ts=T0, experiment=experiment),
        ResponseCompleted(
            **common,
            provider="fake",
            status=200,
            latency_ms=5,
            usage={"prompt_tokens": 1000, "completion_tokens": 500},
            ts=T0 + 5,
            experiment=experiment,
            variant="v1",
        ),
    ]


def test_a_replayed_call_charges_the_experiment_and_not_the_original_tenant() -> None:
    table: dict[str, object] = {}
    ledger = Ledger(table, RULES, build_price_book([]))
    touched: set[str] = set()
    for offset, event in enumerate([*_call("r1", "replay", "e1"), *_call("r2", "acme", "")]):
        touched |= set(ledger.apply(event, 0, offset).states)
    assert "m:budget:exp:e1#0" in touched
    spent = table["m:budget:exp:e1#0"]
    assert isinstance(spent, dict) and Decimal(spent["spent_usd"]) == Decimal("0.00045")
    # the untagged acme call meters acme, and only acme; the replay meters no tenant budget
    assert Decimal(table["m:budget:acme:acme#0"]["spent_usd"]) == Decimal("0.00045")  # type: ignore[index]
    assert not any(k.startswith("m:budget:exp:") and k != "m:budget:exp:e1#0" for k in table)
