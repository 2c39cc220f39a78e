"""Serves the ingress with uvicorn (``tollgate ingress``), in one or more processes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from ingress.app import create_app
from schemas.config import TollgateConfig, load_config

_CONFIG_ENV = "TOLLGATE_CONFIG"


def app_from_env() -> FastAPI:
    """The factory each worker process calls: the config path travels in the environment."""
    return create_app(load_config())


def run_ingress(config: TollgateConfig, config_path: Path | None = None) -> None:
    """One process serves in place; more spawn uvicorn workers that each build their own app
    (own upstream pool, own Kafka producer), sharing the listening socket."""
    options: dict[str, Any] = {
        "host": config.ingress.host,
        "port": config.ingress.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": 15,
    }
    if config.ingress.workers == 1:
        uvicorn.Server(uvicorn.Config(create_app(config), **options)).run()
        return
    if config_path is not None:
        os.environ[_CONFIG_ENV] = str(config_path.resolve())
    uvicorn.run(
        "ingress.main:app_from_env", factory=True, workers=config.ingress.workers, **options
    )
