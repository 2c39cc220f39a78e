"""Routers and deployments built from real config models (no network: adapters are pure)."""

from __future__ import annotations

from typing import Any

from ingress.routing.deployments import LiveDeployment, LiveProvider, build_deployments
from ingress.routing.router import Router
from schemas.pricing import build_price_book
from schemas.routing_config import (
    DeploymentSettings,
    ProviderSettings,
    ResilienceSettings,
    RoutingSettings,
)


def make_router(
    deployments: list[dict[str, Any]], resilience: dict[str, Any] | None = None, **routing: Any
) -> Router:
    resilience_settings = ResilienceSettings.model_validate(resilience or {})
    names = {d["provider"] for d in deployments}
    providers = {
        n: LiveProvider.build(
            n,
            ProviderSettings(kind="openai", base_url=f"http://{n}.invalid/v1"),
            resilience_settings,
        )
        for n in names
    }
    live: list[LiveDeployment] = build_deployments(
        tuple(DeploymentSettings.model_validate(d) for d in deployments),
        providers,
        resilience_settings,
        0.5,
    )
    return Router(RoutingSettings.model_validate(routing), live, build_price_book([]))
