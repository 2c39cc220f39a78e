"""The model endpoints skip FastAPI's layers but answer exactly as FastAPI's handlers do."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ingress.errors import PermissionDeniedError, install_handlers
from ingress.fast_lane import FastLaneApp


async def refused(request: Request) -> Response:
    request.state.request_id = "req-1"
    raise PermissionDeniedError("your key may not use `gpt-x`", param="model")


async def buggy(request: Request) -> Response:
    request.state.request_id = "req-2"
    raise RuntimeError("a bug")


async def breaks_mid_stream(_: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        raise RuntimeError("a bug after the first byte")

    return StreamingResponse(chunks(), media_type="text/event-stream")


async def echo(request: Request) -> Response:
    return Response(await request.body(), 200, media_type="application/json")


class Seen:
    """A middleware on FastAPI's stack: records the paths that went through it."""

    def __init__(self, app: ASGIApp, paths: list[str]) -> None:
        self.app, self.paths = app, paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


@pytest.fixture
def app_and_seen() -> tuple[FastLaneApp, list[str]]:
    lane = {"/refused": refused, "/buggy": buggy, "/mid-stream": breaks_mid_stream, "/echo": echo}
    app = FastLaneApp(lane)
    install_handlers(app)
    app.router.routes.extend(Route(path, fn, methods=["POST"]) for path, fn in lane.items())
    app.router.routes.append(Route("/slow-lane", echo, methods=["POST"]))
    seen: list[str] = []
    app.add_middleware(Seen, paths=seen)
    return app, seen


def client(app: FastLaneApp, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://tollgate")


async def test_a_post_to_a_fast_lane_path_skips_fastapis_stack(
    app_and_seen: tuple[FastLaneApp, list[str]],
) -> None:
    app, seen = app_and_seen
    async with client(app) as http:
        fast = await http.post("/echo", content=b'{"a": 1}')
        slow = await http.post("/slow-lane", content=b'{"b": 2}')
        wrong_method = await http.get("/echo")
    assert (fast.status_code, fast.content) == (200, b'{"a": 1}')
    assert (slow.status_code, slow.content) == (200, b'{"b": 2}')
    assert wrong_method.status_code == 405  # FastAPI's router answers every other method
    assert seen == ["/slow-lane", "/echo"]


async def test_a_gateway_error_gets_its_status_openai_shape_and_request_id(
    app_and_seen: tuple[FastLaneApp, list[str]],
) -> None:
    async with client(app_and_seen[0]) as http:
        response = await http.post("/refused", content=b"{}")
    assert response.status_code == 403
    assert response.headers["x-request-id"] == "req-1"
    assert response.json() == {
        "error": {
            "message": "your key may not use `gpt-x`",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_allowed",
        }
    }


async def test_a_bug_is_logged_and_answered_500_in_openai_shape(
    app_and_seen: tuple[FastLaneApp, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    async with client(app_and_seen[0]) as http:
        response = await http.post("/buggy", content=b"{}")
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-2"
    error = response.json()["error"]
    assert error["type"] == "api_error"
    assert "report the x-request-id" in error["message"]
    assert any(r.exc_info and "a bug" in str(r.exc_info[1]) for r in caplog.records)


async def test_a_bug_after_the_answer_began_is_left_to_the_server(
    app_and_seen: tuple[FastLaneApp, list[str]],
) -> None:
    # a second response start would be a protocol error: the server closes the connection
    with pytest.raises(RuntimeError, match="after the first byte"):
        async with client(app_and_seen[0]) as http:
            await http.post("/mid-stream", content=b"{}")
