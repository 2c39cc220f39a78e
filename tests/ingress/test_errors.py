"""Bad input gets a precise OpenAI-shaped 4xx; a dead upstream a 502 — never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ingress.app import create_app
from schemas.config import TollgateConfig
from tests.harness import TEST_KEY, free_port, write_config

AUTH = {"authorization": f"Bearer {TEST_KEY}"}
GOOD = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, TollgateConfig]]:
    # Kafka and the upstream are both absent: the ingress must still answer every client.
    config, _ = write_config(
        tmp_path / "gw",
        f"127.0.0.1:{free_port()}",
        ingress={"max_body_bytes": 4096},
        fake_upstream={"port": free_port()},
    )
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tollgate") as client:
            yield client, config


def _assert_openai_error(
    response: httpx.Response, status: int, param: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["param"] == param
    return dict(error)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": GOOD["messages"]}, "model"),
        ({"model": "", "messages": GOOD["messages"]}, "model"),
        ({"model": "gpt-4o"}, "messages"),
        ({"model": "gpt-4o", "messages": []}, "messages"),
        ({"model": "gpt-4o", "messages": ["hi"]}, "messages[0]"),
        ({"model": "gpt-4o", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({**GOOD, "max_tokens": 0}, "max_tokens"),
        ({**GOOD, "max_tokens": "10"}, "max_tokens"),
        ({**GOOD, "temperature": 3}, "temperature"),
        ({**GOOD, "n": True}, "n"),
        ({**GOOD, "stream": "yes"}, "stream"),
    ],
)
async def test_invalid_parameters_name_the_param(
    gateway: Any, body: dict[str, Any], param: str
) -> None:
    client, _ = gateway
    response = await client.post("/v1/chat/completions", headers=AUTH, content=orjson.dumps(body))
    assert _assert_openai_error(response, 400, param)["type"] == "invalid_request_error"


@pytest.mark.parametrize("raw", [b"", b"{", b"[1]", b"null", b"\xff\xfe"])
async def test_malformed_json_is_a_400(gateway: Any, raw: bytes) -> None:
    client, _ = gateway
    response = await client.post("/v1/chat/completions", headers=AUTH, content=raw)
    _assert_openai_error(response, 400)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer nope"},
        {"authorization": "Basic abc"},
        {"authorization": "Bearer "},
    ],
)
async def test_missing_or_bad_key_is_a_401(gateway: Any, headers: dict[str, str]) -> None:
    client, _ = gateway
    response = await client.post(
        "/v1/chat/completions", headers=headers, content=orjson.dumps(GOOD)
    )
    assert _assert_openai_error(response, 401)["code"] == "invalid_api_key"


async def test_oversized_body_is_a_413(gateway: Any) -> None:
    client, _ = gateway
    big = {**GOOD, "messages": [{"role": "user", "content": "x" * 5000}]}
    response = await client.post("/v1/chat/completions", headers=AUTH, content=orjson.dumps(big))
    _assert_openai_error(response, 413)


async def test_unknown_path_and_method_are_openai_errors(gateway: Any) -> None:
    client, _ = gateway
    _assert_openai_error(await client.get("/v1/nope"), 404)
    _assert_openai_error(await client.get("/v1/chat/completions"), 405)


async def test_unreachable_upstream_is_a_502_with_request_id_and_events_queue(gateway: Any) -> None:
    client, _ = gateway
    response = await client.post(
        "/v1/chat/completions",
        headers={**AUTH, "x-request-id": "req-abc.1"},
        content=orjson.dumps(GOOD),
    )
    assert _assert_openai_error(response, 502)["type"] == "upstream_error"
    assert response.headers["x-request-id"] == "req-abc.1"
    health = await client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"  # Kafka is away
    events = health.json()["events"]
    assert events["backlog"] == 2 and not events["kafka_connected"]  # received + failed, kept


async def test_hostile_request_ids_are_replaced(gateway: Any) -> None:
    client, _ = gateway
    hostile = "a b\tc" * 50
    response = await client.post(
        "/v1/chat/completions", headers={**AUTH, "x-request-id": hostile}, content=b"{"
    )
    assert response.status_code == 400
    given = response.headers["x-request-id"]
    assert given != hostile and len(given) == 36 and given[14] == "7"
