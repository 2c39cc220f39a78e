"""The upstream transport over real HTTP: no state carried from one call to the next."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ingress.providers.base import UpstreamCall
from ingress.transport import Transport
from schemas.routing_config import Timeouts


@pytest.fixture
async def cookie_setter() -> AsyncIterator[tuple[str, list[str | None]]]:
    """A provider that sets a cookie on every answer and records the cookies it is sent."""
    seen: list[str | None] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("cookie"))
        response = web.json_response({"ok": True}, headers={"Retry-After": "7"})
        response.set_cookie("__cf_bm", "tenant-a-session")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://localhost:{port}/v1/chat", seen  # a name: jars refuse IP cookies
    await runner.cleanup()


async def test_a_providers_cookies_never_reach_the_next_call(
    cookie_setter: tuple[str, list[str | None]],
) -> None:
    # one pooled session serves every tenant: a cookie kept from one call would go out
    # with the next caller's
    url, seen = cookie_setter
    transport = Transport("p", Timeouts())
    try:
        for _ in range(2):
            answer = await transport.send(UpstreamCall(url, b"{}"))
            assert answer.status == 200 and "__cf_bm" in answer.headers["set-cookie"]
    finally:
        await transport.close()
    assert seen == [None, None]


async def test_answer_headers_are_read_whatever_their_case(
    cookie_setter: tuple[str, list[str | None]],
) -> None:
    transport = Transport("p", Timeouts())
    try:
        answer = await transport.send(UpstreamCall(cookie_setter[0], b"{}"))
    finally:
        await transport.close()
    assert answer.headers.get("retry-after") == answer.headers.get("Retry-After") == "7"
