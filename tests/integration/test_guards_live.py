"""The inline guards through the real ingress (uvicorn), the fake upstream and a real
Kafka broker: the provider never receives a redacted original, a blocked request never
reaches it, and the events on ``tollgate.requests`` keep only what the policy allows."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from infra.fake_upstream.server import BackgroundFakeUpstream
from infra.kafka.broker import LocalKafka
from schemas.events import RequestReceived, ResponseFailed, decode
from schemas.topics import REQUESTS
from tests.harness import TEST_KEY, write_config
from tests.ingress.live_gateway import LiveGateway
from tests.kafka_io import collect

pytestmark = pytest.mark.integration

EMAIL, KEY, SSN = (
    "ada.lovelace@example.org",
    "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "078-05-1120",
)
AUTH = {"authorization": f"Bearer {TEST_KEY}"}


@pytest.fixture(scope="module")
def stack(
    kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, BackgroundFakeUpstream]]:
    with BackgroundFakeUpstream() as fake:
        config, path = write_config(
            tmp_path_factory.mktemp("guards"),
            kafka.bootstrap_servers,
            providers={"fake": {"kind": "openai", "base_url": fake.base_url, "api_key": "k"}},
            deployments=[{"model": "*", "provider": "fake"}],
            guards={
                "entities": {"EMAIL": "redact", "SSN": "block"},
                "body": "redacted",
                "reversible": True,
            },
        )
        with LiveGateway(config, path) as gateway:
            yield gateway.url, fake


def events_of(bootstrap: str, rid: str, expected: int) -> list[Any]:
    records = asyncio.run(
        collect(bootstrap, REQUESTS.name, lambda r: rid.encode() in r.value, expected, linger=1)
    )
    return [decode(r.value) for r in records]


def test_the_provider_and_the_audit_log_never_see_redacted_values(
    stack: tuple[str, BackgroundFakeUpstream], kafka: LocalKafka
) -> None:
    url, fake = stack
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"I am {EMAIL}; my token is {KEY}."}],
    }
    headers = {**AUTH, "x-request-id": "guards-live-redact"}
    answer = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    last = httpx.get(f"{fake.root_url}/_fake/last", params={"provider": "openai"}).json()
    sent = orjson.dumps(last["body"]).decode()
    assert EMAIL not in sent and KEY not in sent
    assert "<EMAIL_1>" in sent and "<SECRET_1>" in sent
    events = events_of(kafka.bootstrap_servers, "guards-live-redact", 2)
    [received] = [e for e in events if isinstance(e, RequestReceived)]
    logged = orjson.dumps(received.body).decode()
    assert EMAIL not in logged and KEY not in logged
    assert received.body_kept == "redacted"
    assert received.guard == {
        "action": "redact",
        "entities": {"EMAIL": 1, "SECRET": 1},
        "injection_score": 0.0,
    }


def test_a_blocked_request_is_recorded_but_never_sent(
    stack: tuple[str, BackgroundFakeUpstream], kafka: LocalKafka
) -> None:
    url, fake = stack
    before = httpx.get(f"{fake.root_url}/_fake/stats").json()["providers"]["openai"]["requests"]
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"SSN {SSN}"}]}
    headers = {**AUTH, "x-request-id": "guards-live-block"}
    answer = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "content_policy_violation" and "SSN" in error["message"]
    assert SSN not in answer.text
    after = httpx.get(f"{fake.root_url}/_fake/stats").json()["providers"]["openai"]["requests"]
    assert after == before
    events = events_of(kafka.bootstrap_servers, "guards-live-block", 2)
    [received] = [e for e in events if isinstance(e, RequestReceived)]
    [failed] = [e for e in events if isinstance(e, ResponseFailed)]
    assert received.guard is not None and received.guard["action"] == "block"
    assert SSN not in orjson.dumps(received.body).decode()
    assert failed.status == 400 and SSN not in failed.error_message
