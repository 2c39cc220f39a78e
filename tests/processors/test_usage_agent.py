"""The usage agent on real Kafka, as a real Faust worker process."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from infra.kafka.broker import LocalKafka
from infra.stack import Stack
from schemas.events import (
    RequestReceived,
    ResponseCompleted,
    ResponseFailed,
    Usage,
    UsageRecorded,
    decode,
)
from schemas.pricing import build_price_book
from schemas.tokens import count_chat_prompt, count_text
from schemas.topics import DEAD_LETTER, REQUESTS, USAGE
from tests.events import answered
from tests.harness import write_config
from tests.kafka_io import collect, produce

pytestmark = pytest.mark.integration
MESSAGES = [
    {"role": "system", "content": "Answer tersely."},
    {"role": "user", "content": "Why is the sky blue?"},
]


@pytest.fixture(scope="module")
def worker(kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home: Path = tmp_path_factory.mktemp("agent")
    config, path = write_config(home, kafka.bootstrap_servers)
    stack = Stack(config, path, with_upstream=False)
    stack.start_stage("worker")
    try:
        yield config.keys[0].tenant
    finally:
        stack.down()


def _pair(
    tenant: str, rid: str, usage: dict[str, Any] | None, outputs: list[str]
) -> tuple[RequestReceived, ResponseCompleted]:
    return answered(tenant, rid, usage=usage, outputs=outputs, messages=MESSAGES, provider="openai")


async def _usage_for(bootstrap: str, tenant: str, expected: int) -> dict[str, list[UsageRecorded]]:
    records = await collect(bootstrap, USAGE.name, lambda r: r.key == tenant.encode(), expected)
    by_request: dict[str, list[UsageRecorded]] = {}
    for record in records:
        event = decode(record.value or b"")
        assert isinstance(event, UsageRecorded)
        by_request.setdefault(event.request_id, []).append(event)
    return by_request


async def test_usage_from_provider_and_from_tiktoken_in_any_order(
    kafka: LocalKafka, worker: str
) -> None:
    tenant = worker
    reported = {
        "prompt_tokens": 40,
        "completion_tokens": 9,
        "total_tokens": 49,
        "prompt_tokens_details": {"cached_tokens": 32},
    }
    with_usage = _pair(tenant, "req-provider", reported, ["ignored when usage is reported"])
    counted = _pair(tenant, "req-counted", None, ["Rayleigh scattering.", "Short waves scatter."])
    reversed_ = _pair(tenant, "req-reversed", None, ["Because of Rayleigh scattering."])
    failed_request, _ = _pair(tenant, "req-failed", None, [])
    failed = ResponseFailed(
        request_id="req-failed",
        tenant=tenant,
        key_id="k",
        provider="openai",
        model="gpt-4o-mini",
        status=500,
        latency_ms=3,
        error_type="server_error",
        error_message="boom",
    )
    await produce(
        kafka.bootstrap_servers,
        REQUESTS.name,
        [
            *with_usage,
            *counted,
            reversed_[1],
            reversed_[0],
            failed_request,
            failed,
            # redelivery: every event again, as after a producer retry
            *with_usage,
            *counted,
            reversed_[1],
            reversed_[0],
        ],
    )

    usage = await _usage_for(kafka.bootstrap_servers, tenant, expected=3)
    assert sorted(usage) == ["req-counted", "req-provider", "req-reversed"]
    assert all(len(events) == 1 for events in usage.values()), "a redelivered event counted twice"

    prices = build_price_book([])
    provider = usage["req-provider"][0]
    assert (provider.prompt_tokens, provider.completion_tokens, provider.cached_tokens) == (
        40,
        9,
        32,
    )
    assert provider.token_source == "provider"
    price = prices.lookup("gpt-4o-mini", provider.ts)
    assert price is not None
    # 8 uncached * 0.15 + 32 cached * 0.075 + 9 * 0.60, per 1M tokens
    assert Decimal(provider.cost) == Decimal("0.0000090")

    prompt = count_chat_prompt(MESSAGES, "gpt-4o-mini")
    for rid, outputs in (
        ("req-counted", counted[1].outputs),
        ("req-reversed", reversed_[1].outputs),
    ):
        event = usage[rid][0]
        completion = sum(count_text(text, "gpt-4o-mini") for text in outputs)
        assert (event.prompt_tokens, event.completion_tokens) == (prompt, completion)
        assert event.token_source == "tiktoken"
        counted_usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
        assert Decimal(event.cost) == price.cost(counted_usage)


async def test_undecodable_events_go_to_the_dead_letter_topic(
    kafka: LocalKafka, worker: str
) -> None:
    marker = f"garbage-for-{worker}".encode()
    future = orjson.dumps({"v": 99, "type": "request.received", "id": "x", "note": marker.decode()})
    await produce(
        kafka.bootstrap_servers, REQUESTS.name, [(marker, b"{not json"), (marker, future)]
    )
    dead = await collect(
        kafka.bootstrap_servers, DEAD_LETTER.name, lambda r: r.key == marker, 2, linger=0
    )
    reasons = sorted(dict(r.headers)["tollgate-reason"].decode() for r in dead)
    assert len(dead) >= 2
    assert any("schema version 99" in reason for reason in reasons)
    assert any("JSON" in reason or "json" in reason for reason in reasons)
