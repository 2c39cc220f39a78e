"""Live splits: weights held within tolerance, sticky per user, a holdout, variants routed."""

from __future__ import annotations

from collections import Counter

import pytest

from ingress.routing.router import RouteContext
from ingress.routing.split import HOLDOUT, assign
from schemas.routing_config import SplitExperiment
from tests.ingress.routing.conftest import make_router

SPLIT = SplitExperiment.model_validate(
    {
        "name": "mini-vs-41",
        "variants": [
            {"name": "control", "weight": 1},
            {"name": "treatment", "model": "gpt-4.1-mini", "weight": 3},
        ],
        "holdout": 0.1,
    }
)


def test_weights_and_holdout_hold_on_10000_users() -> None:
    counts = Counter(assign(SPLIT, f"user-{i}").variant for i in range(10_000))
    assert abs(counts[HOLDOUT] / 10_000 - 0.10) < 0.015
    # the rest divides 1:3
    assert abs(counts["control"] / 10_000 - 0.9 * 0.25) < 0.015
    assert abs(counts["treatment"] / 10_000 - 0.9 * 0.75) < 0.015


def test_a_user_always_gets_the_same_variant_and_experiments_are_independent() -> None:
    first = [assign(SPLIT, f"u{i}").variant for i in range(500)]
    assert first == [assign(SPLIT, f"u{i}").variant for i in range(500)]
    other = SPLIT.model_copy(update={"name": "another"})
    again = [assign(other, f"u{i}").variant for i in range(500)]
    assert first != again  # a different experiment reshuffles users


def test_router_routes_the_variant_and_sticks_by_user_or_key() -> None:
    router = make_router(
        [{"model": "gpt-4o-mini", "provider": "a"}, {"model": "gpt-4.1-mini", "provider": "b"}],
        experiments=[
            {**SPLIT.model_dump(), "match": {"model": "gpt-4o-mini"}},
            {
                "name": "by-key",
                "match": {"tenant": "t2"},
                "sticky": "key",
                "variants": [{"name": "x"}],
            },
        ],
    )
    seen: dict[str, set[str]] = {}
    for i in range(300):
        user = f"user-{i % 30}"
        ctx = RouteContext("acme", {}, {}, user=user, key=f"key-{i}")
        split = router.split("gpt-4o-mini", ctx)
        assert split is not None and split.experiment == "mini-vs-41"
        seen.setdefault(user, set()).add(split.variant)
        (target,) = router.plan("gpt-4o-mini", ctx, split)
        expected = "gpt-4.1-mini" if split.variant == "treatment" else "gpt-4o-mini"
        assert target.public_model == expected
    assert all(len(v) == 1 for v in seen.values())  # sticky per user, whatever the key
    assert router.split("gpt-4o", RouteContext("acme", {}, {}, user="u")) is None
    by_key = router.split("gpt-4o", RouteContext("t2", {}, {}, user="u", key="k"))
    assert by_key is not None and by_key.variant == "x"


def test_variant_names_are_checked() -> None:
    with pytest.raises(ValueError, match="unique"):
        SplitExperiment.model_validate({"name": "e", "variants": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(ValueError, match="holdout"):
        SplitExperiment.model_validate({"name": "e", "variants": [{"name": "holdout"}]})
