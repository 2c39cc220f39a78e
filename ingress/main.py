"""Serves the ingress (``tollgate ingress``): one process, or ``ingress.workers`` processes
each binding the port with SO_REUSEPORT, so the kernel spreads connections across them.

Every worker is a whole ingress (own upstream pools, breakers, event publisher and spool
directory, numbered by its index); the parent only supervises: it restarts a worker that
dies and passes SIGTERM/SIGINT on, so a stop drains every worker gracefully.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

import uvicorn

from ingress import log_context
from ingress.app import create_app
from ingress.server_protocol import HeadCoalescingProtocol
from schemas.config import TollgateConfig

log = logging.getLogger(__name__)
RESTART_PAUSE_S = 1.0


def listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(config: TollgateConfig, config_path: Path | None, worker: int = 0) -> None:
    """One ingress process, in the foreground."""
    log_context.install("WARNING")
    sock = listening_socket(config.ingress.host, config.ingress.port)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, config_path, worker=worker, freeze_heap=True),
            loop="uvloop",
            http=HeadCoalescingProtocol,  # httptools, head and body in one write
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # clients reach the ingress directly; no X-Forwarded-* trust
            timeout_graceful_shutdown=15,
        )
    )
    server.run(sockets=[sock])


def run_ingress(config: TollgateConfig, config_path: Path | None = None) -> None:
    if config.ingress.workers == 1:
        serve(config, config_path)
        return
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start(index: int) -> BaseProcess:
        process = context.Process(
            target=serve, args=(config, config_path, index), name=f"ingress-{index}"
        )
        process.start()
        return process

    workers = [start(i) for i in range(config.ingress.workers)]

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in workers:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        for index, process in enumerate(workers):
            if not process.is_alive() and not stopping:
                log.error("ingress worker %d exited (%s); restarting it", index, process.exitcode)
                time.sleep(RESTART_PAUSE_S)
                workers[index] = start(index)
        time.sleep(0.2)
    for process in workers:
        process.join(30)
