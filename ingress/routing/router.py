"""What the caller asked for → the ordered deployments to try.

Resolution: the first matching rule (model, prefix, tenant, header, metadata) may rename the
model, set the strategy or pin deployments; aliases resolve; the model's deployments (or the
``*`` wildcard ones) are ordered by the strategy; then each fallback model's deployments
follow, in the fallback chain's order. The dispatcher walks that list.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass

from ingress.errors import ModelNotFoundError
from ingress.routing.deployments import LiveDeployment
from ingress.routing.split import Assignment, assign
from schemas.pricing import PriceBook
from schemas.routing_config import RouteRule, RoutingSettings, Strategy

MAX_ALIAS_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Target:
    deployment: LiveDeployment
    public_model: str
    upstream_model: str


@dataclass(frozen=True, slots=True)
class RouteContext:
    tenant: str
    headers: Mapping[str, str]
    metadata: Mapping[str, object]
    user: str | None = None
    """Who a live split sticks to with ``sticky: user``: the body's ``user``, else the key's."""
    key: str = ""


class Router:
    def __init__(
        self, settings: RoutingSettings, deployments: list[LiveDeployment], prices: PriceBook
    ) -> None:
        self.settings = settings
        self.deployments = deployments
        self.prices = prices
        self._by_model: dict[str, list[LiveDeployment]] = {}
        for d in deployments:
            self._by_model.setdefault(d.settings.model, []).append(d)
        self._by_id = {d.id: d for d in deployments}
        self._turns: dict[str, itertools.count[int]] = {}

    def public_models(self) -> list[str]:
        """Named models and aliases (the wildcard serves any name, so it lists none)."""
        return sorted({*self._by_model, *self.settings.aliases} - {"*"})

    def resolve(self, model: str) -> str:
        for _ in range(MAX_ALIAS_DEPTH):
            target = self.settings.aliases.get(model)
            if target is None:
                return model
            model = target
        return model

    def serves(self, model: str) -> bool:
        model = self.resolve(model)
        return model in self._by_model or "*" in self._by_model

    def split(self, requested: str, context: RouteContext) -> Assignment | None:
        """The live split this request falls in (first matching experiment), if any."""
        for experiment in self.settings.experiments:
            m = experiment.match
            if m.model is not None and m.model != requested:
                continue
            if m.tenant is not None and m.tenant != context.tenant:
                continue
            subject = context.user if experiment.sticky == "user" else None
            return assign(experiment, subject or context.key)
        return None

    def plan(
        self, requested: str, context: RouteContext, variant: Assignment | None = None
    ) -> list[Target]:
        """``variant`` (from ``split``) replaces the model and may pin deployments."""
        if variant is not None and variant.model:
            requested = variant.model
        rule = self._rule(requested, context)
        model = self.resolve(rule.model if rule and rule.model else requested)
        strategy = (rule.strategy if rule else None) or self.settings.strategy
        pinned = [self._by_id[d] for d in rule.deployments] if rule and rule.deployments else None
        if variant is not None and variant.deployments:
            pinned = [self._by_id[d] for d in variant.deployments]
        targets = self._targets(model, strategy, pinned)
        if not targets:
            raise ModelNotFoundError(
                f"the model `{requested}` does not exist or you do not have access to it;"
                " GET /v1/models lists what your key may use",
                param="model",
            )
        seen = {model}
        for name in self.settings.fallbacks.get(model, ()):
            fallback = self.resolve(name)
            if fallback not in seen:
                seen.add(fallback)
                targets += self._targets(fallback, strategy, None)
        return targets

    def _targets(
        self, model: str, strategy: Strategy, pinned: list[LiveDeployment] | None
    ) -> list[Target]:
        pool = pinned or self._by_model.get(model) or self._by_model.get("*") or []
        ordered = self._order(model, strategy, pool)
        return [Target(d, model, d.upstream_model(model)) for d in ordered]

    def _order(
        self, model: str, strategy: Strategy, pool: list[LiveDeployment]
    ) -> list[LiveDeployment]:
        """Healthy deployments by the strategy, then those failing health checks (last resort)."""
        healthy = [d for d in pool if d.healthy] or pool
        return self._by_strategy(model, strategy, healthy) + [d for d in pool if d not in healthy]

    def _by_strategy(
        self, model: str, strategy: Strategy, healthy: list[LiveDeployment]
    ) -> list[LiveDeployment]:
        if len(healthy) < 2:
            return healthy
        if strategy == "round_robin":
            turn = next(self._turns.setdefault(model, itertools.count())) % len(healthy)
            return healthy[turn:] + healthy[:turn]
        if strategy == "least_latency":
            return sorted(healthy, key=lambda d: d.latency_ewma_ms or 0.0)
        if strategy == "cost":
            return sorted(healthy, key=lambda d: d.unit_price(self.prices, model))
        if strategy == "least_tokens":
            return sorted(healthy, key=lambda d: d.tokens_in_flight)
        # weighted: a weighted random order (Efraimidis-Spirakis keys), so the first pick
        # follows the weights and the rest stay available as in-model failover.
        return sorted(
            healthy, key=lambda d: random.random() ** (1 / d.settings.weight), reverse=True
        )

    def _rule(self, model: str, context: RouteContext) -> RouteRule | None:
        for rule in self.settings.rules:
            m = rule.match
            if m.model is not None and m.model != model:
                continue
            if m.model_prefix is not None and not model.startswith(m.model_prefix):
                continue
            if m.tenant is not None and m.tenant != context.tenant:
                continue
            if any(context.headers.get(k.lower()) != v for k, v in m.header.items()):
                continue
            if any(str(context.metadata.get(k)) != v for k, v in m.metadata.items()):
                continue
            return rule
        return None
