"""The floor under any ingress built on this stack: a bare ASGI app on the same uvicorn,
uvloop and httptools, forwarding each request to one URL through one pooled aiohttp session
and parsing and re-encoding both bodies with orjson. No FastAPI, keys, routing, guards,
metrics or Kafka. The overhead benchmark runs it beside Tollgate, so what Tollgate adds is
told apart from what the HTTP stack and the machine cost anyway.

    .venv/bin/python -m tests.bench.bare_proxy PORT UPSTREAM_URL [HEADER=VALUE ...]
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import orjson
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BareProxy:
    def __init__(self, upstream: str, headers: dict[str, str]) -> None:
        self.upstream = upstream
        self.headers = {"content-type": "application/json", **headers}
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode()
        assert self.session is not None
        async with self.session.post(
            self.upstream,
            data=orjson.dumps(orjson.loads(body)),
            headers={**self.headers, "authorization": authorization},
        ) as response:
            answer = orjson.dumps(orjson.loads(await response.read()))
            status = response.status
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=256)
                self.session = aiohttp.ClientSession(connector=connector)
                await send({"type": "lifespan.startup.complete"})
            else:
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    port, upstream, *pairs = sys.argv[1:]
    headers = dict(pair.split("=", 1) for pair in pairs)
    uvicorn.run(
        BareProxy(upstream, headers),
        host="127.0.0.1",
        port=int(port),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
