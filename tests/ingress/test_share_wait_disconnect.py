"""A request held for this replica's share whose client leaves is answered 499 and
recorded, and never sent upstream (the app in process, spoken to in ASGI as uvicorn does:
``http.disconnect`` once the client closed; the real fake upstream; events captured)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from infra.fake_upstream.server import BackgroundFakeUpstream
from ingress.admission.controller import GONE_CHECK_S
from schemas.events import RequestReceived, RequestRefused, now_ms
from tests.harness import TEST_KEY
from tests.ingress.in_process import app_capturing_events
from tests.ingress.test_admission_decisions import BODY, _peer
from tests.ingress.test_admission_share_wait import PER_REQUEST

AUTH = {"authorization": f"Bearer {TEST_KEY}"}
REQUEST = {"model": "gpt-4o-mini", **BODY}


async def _leaving_client(app: Any, left: asyncio.Event) -> list[dict[str, Any]]:
    """One request; the client closes its connection once ``left`` is set."""
    raw = orjson.dumps(REQUEST)
    headers = [
        (b"authorization", AUTH["authorization"].encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(raw)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    body_sent = False
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_a_held_request_whose_client_leaves_is_answered_499_and_not_sent(
    tmp_path: Path,
) -> None:
    with BackgroundFakeUpstream() as fake:
        app, events = app_capturing_events(
            tmp_path / "gw",
            fake,
            budgets=[{"name": "t", "scope": "tenant", "max_tokens": 10 * PER_REQUEST}],
            admission={"share_wait_s": 5.0},
        )
        async with app.router.lifespan_context(app):
            admission = app.state.gateway.admission
            _peer(admission, now_ms())  # two replicas: a quarter of what is left each
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://tollgate") as c:
                for _ in range(2):  # served, and not counted by any state: the share is taken
                    answer = await c.post("/v1/chat/completions", json=REQUEST, headers=AUTH)
                    assert answer.status_code == 200, answer.text
            async with httpx.AsyncClient(base_url=fake.root_url) as upstream:
                served = (await upstream.get("/_fake/stats")).json()
            left = asyncio.Event()
            third = asyncio.create_task(_leaving_client(app, left))
            await asyncio.sleep(0.3)
            assert not third.done() and admission.share_waiting == 1  # held
            left.set()
            left_at = time.monotonic()
            sent = await asyncio.wait_for(third, 3.0)
            assert time.monotonic() - left_at < GONE_CHECK_S + 0.5  # not share_wait_s
            async with httpx.AsyncClient(base_url=fake.root_url) as upstream:
                assert (await upstream.get("/_fake/stats")).json() == served
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 499
    error = orjson.loads(b"".join(m.get("body", b"") for m in sent[1:]))["error"]
    assert error["code"] == "client_closed_request"
    assert len([e for e in events if isinstance(e, RequestReceived)]) == 2
    refused = [e for e in events if isinstance(e, RequestRefused)]
    assert [(e.status, e.error_code) for e in refused] == [(499, "client_closed_request")]
    registry = app.state.gateway.metrics.registry
    left_count = registry.get_sample_value(
        "tollgate_admission_share_wait_seconds_count", {"outcome": "left"}
    )
    assert left_count == 1
