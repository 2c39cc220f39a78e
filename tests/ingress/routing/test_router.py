"""Model → ordered targets: aliases, rules, wildcards, strategies, fallbacks."""

from __future__ import annotations

from collections import Counter

import pytest

from ingress.errors import ModelNotFoundError
from ingress.routing.router import RouteContext
from tests.ingress.routing.conftest import make_router

CTX = RouteContext("acme", {}, {})


def ids(targets: list) -> list[str]:  # type: ignore[type-arg]
    return [t.deployment.id for t in targets]


def test_alias_and_upstream_model() -> None:
    router = make_router(
        [{"model": "gpt-4o", "provider": "a", "upstream_model": "gpt-4o-2024-08-06"}],
        aliases={"smart": "gpt-4o"},
    )
    (target,) = router.plan("smart", CTX)
    assert (target.public_model, target.upstream_model) == ("gpt-4o", "gpt-4o-2024-08-06")


def test_wildcard_serves_any_name_and_unknown_is_404() -> None:
    router = make_router([{"model": "*", "provider": "a"}])
    (target,) = router.plan("llama3", CTX)
    assert target.upstream_model == "llama3"
    with pytest.raises(ModelNotFoundError):
        make_router([{"model": "gpt-4o", "provider": "a"}]).plan("llama3", CTX)


def test_weighted_first_pick_follows_weights() -> None:
    router = make_router(
        [
            {"model": "m", "provider": "a", "weight": 3},
            {"model": "m", "provider": "b", "weight": 1},
        ]
    )
    firsts = Counter(ids(router.plan("m", CTX))[0] for _ in range(4000))
    share = firsts["a/m"] / 4000
    assert 0.72 < share < 0.78  # 3:1 → 75 %
    assert sorted(ids(router.plan("m", CTX))) == ["a/m", "b/m"]  # the other stays as failover


def test_round_robin_rotates() -> None:
    router = make_router([{"model": "m", "provider": p} for p in "abc"], strategy="round_robin")
    firsts = [ids(router.plan("m", CTX))[0] for _ in range(6)]
    assert firsts == ["a/m", "b/m", "c/m", "a/m", "b/m", "c/m"]


def test_least_latency_and_least_tokens() -> None:
    router = make_router([{"model": "m", "provider": p} for p in "ab"], strategy="least_latency")
    a, b = router.deployments
    a.observe_latency(100)
    b.observe_latency(20)
    assert ids(router.plan("m", CTX)) == ["b/m", "a/m"]
    b.observe_latency(400)  # EWMA with alpha 0.5: 210 > 100
    assert ids(router.plan("m", CTX)) == ["a/m", "b/m"]
    tokens = make_router([{"model": "m", "provider": p} for p in "ab"], strategy="least_tokens")
    tokens.deployments[0].tokens_in_flight = 5000
    assert ids(tokens.plan("m", CTX)) == ["b/m", "a/m"]


def test_cost_strategy_prefers_the_cheaper_upstream() -> None:
    router = make_router(
        [
            {"model": "chat", "provider": "a", "upstream_model": "gpt-4o"},
            {"model": "chat", "provider": "b", "upstream_model": "gpt-4o-mini"},
        ],
        strategy="cost",
    )
    assert ids(router.plan("chat", CTX)) == ["b/gpt-4o-mini", "a/gpt-4o"]


def test_fallback_chain_follows_the_models_own_deployments() -> None:
    router = make_router(
        [
            {"model": "gpt-4o", "provider": "openai"},
            {"model": "claude", "provider": "anthropic", "upstream_model": "claude-sonnet-4-5"},
        ],
        fallbacks={"gpt-4o": ["claude"]},
    )
    targets = router.plan("gpt-4o", CTX)
    assert [(t.deployment.id, t.public_model) for t in targets] == [
        ("openai/gpt-4o", "gpt-4o"),
        ("anthropic/claude-sonnet-4-5", "claude"),
    ]


def test_rules_match_tenant_header_metadata_and_prefix() -> None:
    router = make_router(
        [
            {"model": "gpt-4o", "provider": "a"},
            {"model": "gpt-4o", "provider": "eu", "name": "eu-4o", "region": "eu"},
            {"model": "gpt-4o-mini", "provider": "a"},
        ],
        rules=[
            {"match": {"tenant": "cheap"}, "model": "gpt-4o-mini"},
            {"match": {"header": {"x-region": "eu"}}, "deployments": ["eu-4o"]},
            {"match": {"metadata": {"tier": "eu"}}, "deployments": ["eu-4o"]},
        ],
    )
    assert ids(router.plan("gpt-4o", RouteContext("cheap", {}, {}))) == ["a/gpt-4o-mini"]
    assert ids(router.plan("gpt-4o", RouteContext("x", {"x-region": "eu"}, {}))) == ["eu-4o"]
    assert ids(router.plan("gpt-4o", RouteContext("x", {}, {"tier": "eu"}))) == ["eu-4o"]
    assert len(router.plan("gpt-4o", CTX)) == 2


def test_unhealthy_deployments_go_last() -> None:
    router = make_router([{"model": "m", "provider": p} for p in "ab"], strategy="round_robin")
    router.deployments[0].healthy = False
    for _ in range(3):
        assert ids(router.plan("m", CTX)) == ["b/m", "a/m"]
