"""The live side of the config: providers with their adapter and connection pool, and
deployments with their breaker, bulkhead and the numbers strategies choose by."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ingress.providers.base import Adapter
from ingress.providers.registry import build_adapter
from ingress.resilience.breaker import Breaker
from ingress.resilience.bulkhead import Bulkhead
from ingress.transport import Transport
from schemas.pricing import PriceBook
from schemas.routing_config import (
    DeploymentSettings,
    ProviderSettings,
    ResilienceSettings,
)


@dataclass(eq=False)
class LiveProvider:
    name: str
    settings: ProviderSettings
    adapter: Adapter
    transport: Transport

    @classmethod
    def build(cls, name: str, settings: ProviderSettings, resilience: ResilienceSettings):
        timeouts = settings.timeouts or resilience.timeouts
        ca_cert = str(settings.ca_cert) if settings.ca_cert else None
        proxy = settings.proxy.get_secret_value() if settings.proxy else None
        transport = Transport(name, timeouts, settings.max_connections, ca_cert, proxy)
        return cls(name, settings, build_adapter(settings), transport)


@dataclass(eq=False)
class LiveDeployment:
    settings: DeploymentSettings
    provider: LiveProvider
    breaker: Breaker
    bulkhead: Bulkhead
    ewma_alpha: float = 0.3
    latency_ewma_ms: float | None = None
    tokens_in_flight: int = 0
    healthy: bool = True
    last_checked: float = field(default=0.0)
    id: str = field(init=False)
    """The settings' id, computed once (several reads a request)."""

    def __post_init__(self) -> None:
        self.id = self.settings.id

    def upstream_model(self, requested: str) -> str:
        return self.settings.upstream_model or requested

    def observe_latency(self, ms: float) -> None:
        if self.latency_ewma_ms is None:
            self.latency_ewma_ms = ms
        else:
            self.latency_ewma_ms += self.ewma_alpha * (ms - self.latency_ewma_ms)

    def unit_price(self, prices: PriceBook, requested: str) -> float:
        """Input plus output price per 1M tokens today; unknown prices sort last."""
        price = prices.lookup(self.upstream_model(requested), int(time.time() * 1000))
        if price is None:
            price = prices.lookup(requested, int(time.time() * 1000))
        return float(price.input + price.output) if price else float("inf")


def build_deployments(
    deployments: tuple[DeploymentSettings, ...],
    providers: dict[str, LiveProvider],
    resilience: ResilienceSettings,
    ewma_alpha: float,
) -> list[LiveDeployment]:
    return [
        LiveDeployment(
            settings=d,
            provider=providers[d.provider],
            breaker=Breaker(resilience.breaker),
            bulkhead=Bulkhead(d.id, d.max_concurrency, d.queue_limit, d.queue_timeout_s),
            ewma_alpha=ewma_alpha,
        )
        for d in deployments
    ]
