"""Runs the processors as a Faust worker (``tollgate worker``)."""

from __future__ import annotations

import faust

from processors.app import create_app
from schemas.config import TollgateConfig


def run_worker(config: TollgateConfig, loglevel: str = "warn") -> None:
    """Blocks until SIGTERM/SIGINT; Faust commits offsets and flushes tables on the way out."""
    app = create_app(config)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
