"""Active health checks mark a dead deployment unhealthy (routed last) and a live one healthy."""

from __future__ import annotations

import asyncio

from infra.fake_upstream.server import BackgroundFakeUpstream
from ingress.routing.deployments import LiveProvider, build_deployments
from ingress.routing.health import check_forever
from ingress.routing.router import RouteContext, Router
from schemas.pricing import build_price_book
from schemas.routing_config import (
    DeploymentSettings,
    ProviderSettings,
    ResilienceSettings,
    RoutingSettings,
    Timeouts,
)
from tests.harness import free_port


async def test_probes_mark_deployments_and_routing_follows() -> None:
    resilience = ResilienceSettings(timeouts=Timeouts(connect_s=0.5, first_token_s=0.5))
    with BackgroundFakeUpstream() as fake:
        providers = {
            "dead": LiveProvider.build(
                "dead",
                ProviderSettings(kind="openai", base_url=f"http://127.0.0.1:{free_port()}/v1"),
                resilience,
            ),
            "live": LiveProvider.build(
                "live", ProviderSettings(kind="openai", base_url=fake.base_url), resilience
            ),
        }
        deployments = build_deployments(
            (
                DeploymentSettings(model="m", provider="dead", health_check=True),
                DeploymentSettings(model="m", provider="live", health_check=True),
            ),
            providers,
            resilience,
            0.3,
        )
        router = Router(RoutingSettings(strategy="round_robin"), deployments, build_price_book([]))
        task = asyncio.create_task(check_forever(lambda: deployments, 0.05))
        try:
            for _ in range(100):
                if not deployments[0].healthy and deployments[1].last_checked:
                    break
                await asyncio.sleep(0.05)
            assert (deployments[0].healthy, deployments[1].healthy) == (False, True)
            for _ in range(4):
                plan = router.plan("m", RouteContext("t", {}, {}))
                assert [t.deployment.id for t in plan] == ["live/m", "dead/m"]
        finally:
            task.cancel()
            for provider in providers.values():
                await provider.transport.close()
