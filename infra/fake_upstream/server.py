"""Serving the fake upstream with uvicorn (uvloop + httptools), on loopback by default.

``serve`` runs inside a running event loop, ``run`` blocks (the ``tollgate upstream`` and
``python -m infra.fake_upstream`` entry points), ``BackgroundFakeUpstream`` runs it in a
thread of its own for tests and benchmarks. Shutting down releases ``x-fake-hang`` requests
and pending delays first, so a stop never waits on the fake's own faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import sys
import threading
from types import TracebackType

import uvicorn
import uvloop

from infra.fake_upstream.app import create_app
from infra.fake_upstream.faults import QuietDrops
from infra.fake_upstream.settings import FakeUpstreamSettings
from infra.fake_upstream.upstream import Upstream

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9100


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def bind(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A listening-ready socket (port 0 = any free port); errors surface here, not in uvicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class FakeUpstreamServer(uvicorn.Server):
    """uvicorn's server, announcing readiness and releasing the fake's waits on shutdown."""

    def __init__(self, settings: FakeUpstreamSettings, sock: socket.socket) -> None:
        app = create_app(settings)
        self.upstream: Upstream = app.state.upstream
        self.sock = sock
        self.ready = threading.Event()
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{port}/v1"
        logging.getLogger("uvicorn.error").addFilter(_QUIET)
        super().__init__(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
                loop="uvloop",
                http="httptools",
                lifespan="off",
                server_header=False,
                proxy_headers=False,
                timeout_keep_alive=65,
                timeout_graceful_shutdown=2,
            )
        )

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self.ready.set()
            self._listening.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.upstream.close()
        await super().shutdown(sockets)

    async def serve_until_stopped(self, ready: asyncio.Event | None, announce: bool) -> None:
        """Serve until ``should_exit``; cancelling also shuts down gracefully."""
        self._listening = asyncio.Event()
        task = asyncio.create_task(self.serve(sockets=[self.sock]))
        try:
            listening = asyncio.create_task(self._listening.wait())
            await asyncio.wait((task, listening), return_when=asyncio.FIRST_COMPLETED)
            listening.cancel()
            if self._listening.is_set():
                if announce:
                    print(f"fake upstream (openai) listening on {self.base_url}", flush=True)
                if ready is not None:
                    ready.set()
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self.should_exit = True
            await task
            raise
        finally:
            self.sock.close()


_QUIET = QuietDrops()


def _warn_if_exposed(host: str) -> None:
    if not _is_loopback(host):
        print(f"warning: the fake upstream listens on {host}, not loopback", file=sys.stderr)


async def serve(
    settings: FakeUpstreamSettings,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    ready: asyncio.Event | None = None,
    *,
    announce: bool = True,
) -> None:
    """Serve in the running loop until cancelled; ``ready`` is set once it accepts."""
    _warn_if_exposed(host)
    await FakeUpstreamServer(settings, bind(host, port)).serve_until_stopped(ready, announce)


def run(settings: FakeUpstreamSettings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve in the foreground on uvloop until SIGINT/SIGTERM."""
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(settings, host, port))


class BackgroundFakeUpstream:
    """The fake in a daemon thread with its own loop: ``with BackgroundFakeUpstream() as f:``."""

    def __init__(
        self,
        settings: FakeUpstreamSettings | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
    ) -> None:
        _warn_if_exposed(host)
        self.server = FakeUpstreamServer(settings or FakeUpstreamSettings(), bind(host, port))
        self.base_url = self.server.base_url
        self.root_url = self.base_url.removesuffix("/v1")
        self._thread = threading.Thread(target=self._run, name="fake-upstream", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            uvloop.run(self.server.serve_until_stopped(None, announce=False))
        except BaseException as exc:  # reported by start()
            self._error = exc
            self.server.ready.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self, timeout_s: float = 10.0) -> BackgroundFakeUpstream:
        self._thread.start()
        if not self.server.ready.wait(timeout_s) or self._error is not None:
            raise RuntimeError(f"the fake upstream did not start: {self._error!r}")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise RuntimeError("the fake upstream did not stop in time")

    def __enter__(self) -> BackgroundFakeUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
