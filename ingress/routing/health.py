"""Active health checks: probe deployments that ask for it, so routing skips dead ones
before a user request finds out. A probe is the adapter's cheapest call (a model list);
an answer below 500 means the endpoint is up (a 401 is a config problem, not an outage)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ingress.routing.deployments import LiveDeployment
from ingress.transport import TransportError

log = logging.getLogger(__name__)


async def probe(deployment: LiveDeployment) -> bool:
    provider = deployment.provider
    call = provider.adapter.health_call()
    if call is None:
        return True
    try:
        answer = await provider.transport.send(call)
    except TransportError as exc:
        log.warning("health check of %s failed: %s", deployment.id, exc)
        return False
    return answer.status < 500


async def check_forever(deployments: Callable[[], list[LiveDeployment]], interval_s: float) -> None:
    while True:
        for deployment in deployments():
            if not deployment.settings.health_check:
                continue
            healthy = await probe(deployment)
            if healthy != deployment.healthy:
                log.warning(
                    "deployment %s is now %s", deployment.id, "healthy" if healthy else "unhealthy"
                )
            deployment.healthy = healthy
            deployment.last_checked = time.time()
        await asyncio.sleep(interval_s)
