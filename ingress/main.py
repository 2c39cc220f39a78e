"""Serves the ingress with uvicorn (``tollgate ingress``)."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from ingress import log_context
from ingress.app import create_app
from schemas.config import TollgateConfig


def run_ingress(config: TollgateConfig, config_path: Path | None = None) -> None:
    """Serve; with a config file, edits to it are applied live (see ``ingress.reload``)."""
    log_context.install("WARNING")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, config_path),
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
