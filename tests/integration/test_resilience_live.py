"""Failover, timeouts, mid-stream failures and client disconnects over real HTTP.

Faults come from the fake upstream's ``x-fake-*`` headers, set per provider in the config
(``providers.<name>.headers``), so one deployment is broken and its neighbour is not.
Outcomes are checked at the client, at the fake (what it was asked) and on Kafka (events).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from infra.fake_upstream.server import BackgroundFakeUpstream
from infra.kafka.broker import LocalKafka
from schemas.topics import REQUESTS
from tests.harness import TEST_KEY, write_config
from tests.ingress.live_gateway import LiveGateway
from tests.kafka_io import collect

pytestmark = pytest.mark.integration
MESSAGES: list[Any] = [{"role": "user", "content": "Tell me a story about retries."}]


@pytest.fixture(scope="module")
def fake() -> Iterator[BackgroundFakeUpstream]:
    with BackgroundFakeUpstream() as server:
        yield server


def provider(fake: BackgroundFakeUpstream, **headers: str) -> dict[str, Any]:
    return {"kind": "openai", "base_url": fake.base_url, "headers": headers}


@pytest.fixture(scope="module")
def gateway(
    kafka: LocalKafka, fake: BackgroundFakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveGateway]:
    config, path = write_config(
        tmp_path_factory.mktemp("resilience"),
        kafka.bootstrap_servers,
        providers={
            "healthy": provider(fake),
            "down": provider(fake, **{"x-fake-status": "503"}),
            "hangs": provider(fake, **{"x-fake-hang": "1"}),
            "drops": provider(fake, **{"x-fake-disconnect-after-tokens": "5"}),
            "slow": provider(fake, **{"x-fake-tokens-per-second": "40"}),
            "crawls": {
                **provider(fake, **{"x-fake-tokens-per-second": "2"}),
                "timeouts": {"first_token_s": 5, "idle_s": 0.2, "total_s": 30},
            },
        },
        deployments=[
            # gpt-4o: the primary always answers 503; the fallback model is healthy
            {"model": "gpt-4o", "provider": "down"},
            {"model": "gpt-4.1-mini", "provider": "healthy"},
            {"model": "o3-mini", "provider": "hangs"},
            {"model": "gpt-4.1", "provider": "drops"},
            {"model": "gpt-5-mini", "provider": "slow"},
            {"model": "gpt-5", "provider": "crawls"},
        ],
        routing={"fallbacks": {"gpt-4o": ["gpt-4.1-mini"]}},
        resilience={
            "retries": {"attempts": 1, "backoff_initial_s": 0.01, "backoff_max_s": 0.02},
            "timeouts": {"first_token_s": 1.0, "idle_s": 1.0},
            "breaker": {"failure_threshold": 50},
        },
    )
    with LiveGateway(config, path) as live:
        yield live


@pytest.fixture
def client(gateway: LiveGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=TEST_KEY, max_retries=0, timeout=30
    ) as c:
        yield c


async def event_of(kafka: LocalKafka, rid: str, kind: bytes) -> dict[str, Any]:
    records = await collect(
        kafka.bootstrap_servers,
        REQUESTS.name,
        lambda r: rid.encode() in r.value and kind in r.value,
        expected=1,
        linger=0.1,
    )
    return dict(orjson.loads(records[0].value))


async def test_failover_to_the_fallback_model_is_recorded(
    client: openai.OpenAI, kafka: LocalKafka
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, extra_headers={"x-request-id": "failover-1"}
    )
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-tollgate-deployment"] == "healthy/gpt-4.1-mini"
    assert raw.headers["x-tollgate-attempts"] == "3"  # 503, retried 503, then the fallback
    event = await event_of(kafka, "failover-1", b"response.completed")
    assert [a["status"] for a in event["attempts"]] == [503, 503, 200]
    assert event["model"] == "gpt-4.1-mini" and event["deployment"] == "healthy/gpt-4.1-mini"


async def test_first_token_timeout_is_a_504_after_retries(
    client: openai.OpenAI, kafka: LocalKafka
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="o3-mini", messages=MESSAGES, extra_headers={"x-request-id": "hang-1"}
        )
    assert caught.value.status_code == 504
    assert "timed out" in caught.value.message
    event = await event_of(kafka, "hang-1", b"response.failed")
    assert [a["status"] for a in event["attempts"]] == [504, 504]


async def test_a_stream_broken_after_its_first_byte_is_not_retried(
    gateway: LiveGateway, kafka: LocalKafka
) -> None:
    body = {"model": "gpt-4.1", "messages": MESSAGES, "stream": True}
    headers = {"authorization": f"Bearer {TEST_KEY}", "x-request-id": "broken-1"}
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers)
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert response.status_code == 200
    assert orjson.loads(events[-1])["error"]["code"] == "stream_interrupted"
    assert "[DONE]" not in events
    event = await event_of(kafka, "broken-1", b"response.completed")
    assert event["status"] == 502 and event["outputs"][0]  # the partial text is kept
    assert len(event["attempts"]) == 1  # never retried once bytes flowed


async def test_client_disconnect_mid_stream_is_an_event(
    gateway: LiveGateway, kafka: LocalKafka
) -> None:
    body = {"model": "gpt-5-mini", "messages": MESSAGES, "stream": True, "max_tokens": 400}
    headers = {"authorization": f"Bearer {TEST_KEY}", "x-request-id": "leaver-1"}
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, headers=headers) as r,
    ):
        async for line in r.aiter_lines():
            if '"content"' in line and '""' not in line:
                break  # got some text; hang up
    event = await event_of(kafka, "leaver-1", b"response.completed")
    assert event["disconnected"] is True
    assert event["outputs"][0] and event["usage"] is None  # the processors will count it


async def test_metrics_and_detailed_health(gateway: LiveGateway, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{gateway.url}/metrics")).text
        health = (await http.get(f"{gateway.url}/health?detail=1")).json()
    assert (
        'tollgate_requests_total{endpoint="/v1/chat/completions",model="gpt-4.1-mini",status="200"}'
        in metrics
    )
    assert 'tollgate_retries_total{deployment="down/gpt-4o"}' in metrics
    assert 'tollgate_breaker_state{deployment="down/gpt-4o"}' in metrics
    assert "tollgate_event_backlog" in metrics
    assert {d["id"] for d in health["deployments"]} >= {"down/gpt-4o", "healthy/gpt-4.1-mini"}
    assert all(d["breaker"] in ("closed", "open", "half_open") for d in health["deployments"])
    await asyncio.sleep(0)


async def test_a_stream_that_goes_quiet_hits_the_idle_timeout(
    gateway: LiveGateway, kafka: LocalKafka
) -> None:
    body = {"model": "gpt-5", "messages": MESSAGES, "stream": True, "max_tokens": 50}
    headers = {"authorization": f"Bearer {TEST_KEY}", "x-request-id": "quiet-1"}
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers)
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    error = orjson.loads(events[-1])["error"]
    assert error["code"] == "stream_interrupted" and "sent nothing for 0.2 s" in error["message"]
    event = await event_of(kafka, "quiet-1", b"response.completed")
    assert event["status"] == 504 and len(event["attempts"]) == 1
