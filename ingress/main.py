"""Serves the ingress with uvicorn (``tollgate ingress``)."""

from __future__ import annotations

import uvicorn

from ingress.app import create_app
from schemas.config import TollgateConfig


def run_ingress(config: TollgateConfig) -> None:
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=config.ingress.host,
            port=config.ingress.port,
            loop="uvloop",
            http="httptools",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=15,
        )
    )
    server.run()
