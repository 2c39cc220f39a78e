"""The ingress served for real (uvicorn, uvloop, httptools, the head-coalescing protocol) in
a thread, for SDK tests."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn
import uvloop

from ingress.app import create_app
from ingress.server_protocol import HeadCoalescingProtocol
from schemas.config import TollgateConfig


class LiveGateway:
    def __init__(self, config: TollgateConfig, config_path: Path | None = None) -> None:
        self.config = config
        self.app = create_app(config, config_path)
        self.url = f"http://127.0.0.1:{config.ingress.port}"
        server_config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=config.ingress.port,
            loop="none",
            http=HeadCoalescingProtocol,  # as `tollgate ingress` serves
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(server_config)
        self._thread = threading.Thread(
            target=lambda: uvloop.run(self.server.serve()), name="ingress", daemon=True
        )

    def __enter__(self) -> LiveGateway:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the ingress did not start")
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", self.config.ingress.port), 1):
            pass
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self._thread.join(20)
