"""Everything built from one config that serves requests: providers, deployments, router,
dispatcher. A config reload builds a new ``Runtime`` and swaps it in; requests already in
flight finish on the one they started with, which closes its connections when the last of
them is done (so a reload drops nothing)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ingress.dispatch import Dispatcher, Observer
from ingress.guards import InlineGuard
from ingress.routing.deployments import LiveDeployment, LiveProvider, build_deployments
from ingress.routing.router import Router
from schemas.config import TollgateConfig
from schemas.pricing import Price, PriceBook, build_price_book


class Runtime:
    def __init__(self, config: TollgateConfig, observe: Observer | None = None) -> None:
        self.config = config
        self.prices: PriceBook = build_price_book(config.prices())
        self.providers = {
            name: LiveProvider.build(name, settings, config.resilience)
            for name, settings in config.providers.items()
        }
        self.deployments: list[LiveDeployment] = build_deployments(
            config.deployments, self.providers, config.resilience, config.routing.ewma_alpha
        )
        self.router = Router(config.routing, self.deployments, self.prices)
        self.dispatcher = Dispatcher(config.resilience.retries, observe)
        self.guards = InlineGuard(config.guards)
        self._prices_today: dict[tuple[str, str, int], Price | None] = {}
        self._active = 0
        self._retired = False
        self._closed = asyncio.Event()

    def price_today(self, model: str, deployment: str = "") -> Price | None:
        """The price book's answer for ``model`` (served by ``deployment``) today, memoised
        per day (a lookup walks wildcard patterns; the hot path asks the same few again)."""
        day = int(time.time() // 86_400)
        key = (model, deployment, day)
        if key not in self._prices_today:
            if len(self._prices_today) > 4096:
                self._prices_today.clear()
            now = int(time.time() * 1000)
            self._prices_today[key] = self.prices.lookup(model, now, deployment)
        return self._prices_today[key]

    def enter(self) -> Callable[[], None]:
        """Count a request in; call what it returns when the request is done."""
        self._active += 1
        return self._leave

    def _leave(self) -> None:
        self._active -= 1
        if self._retired and self._active == 0:
            asyncio.get_running_loop().create_task(self.close())

    def retire(self) -> None:
        self._retired = True
        if self._active == 0:
            asyncio.get_running_loop().create_task(self.close())

    async def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        for provider in self.providers.values():
            await provider.transport.close()
