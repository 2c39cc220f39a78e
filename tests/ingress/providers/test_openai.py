"""The OpenAI adapter (and its OpenAI-compatible twin) against the fake, JSON and streams."""

from __future__ import annotations

from typing import Any

import pytest

from infra.fake_upstream.server import BackgroundFakeUpstream
from ingress.exchange import ProviderFailure
from tests.ingress.providers.conftest import streamed_text, streamed_usage

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}


@pytest.fixture
def openai(fake: BackgroundFakeUpstream, wire: Any) -> Any:
    return wire(kind="openai", base_url=fake.base_url, api_key="sk-upstream")


async def test_chat_returns_completion_with_usage(openai: Any) -> None:
    answer = await openai.chat(BODY)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"]
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


async def test_stream_asks_for_usage_and_matches_json_answer(openai: Any) -> None:
    whole = await openai.chat({**BODY, "seed": 7})
    chunks = await openai.stream({**BODY, "seed": 7})
    assert streamed_text(chunks) == whole["choices"][0]["message"]["content"]
    assert streamed_usage(chunks) == whole["usage"]  # include_usage was added by the adapter


async def test_upstream_model_replaces_public_name(
    openai: Any, fake: BackgroundFakeUpstream
) -> None:
    answer = await openai.chat({**BODY, "model": "my-alias"}, upstream_model="gpt-4o")
    assert answer["model"].startswith("gpt-4o")


async def test_bad_key_is_a_non_retryable_401(fake: BackgroundFakeUpstream, wire: Any) -> None:
    bad = wire(kind="openai", base_url=fake.base_url, api_key="sk-wrong")
    with pytest.raises(ProviderFailure) as caught:
        await bad.chat(BODY)
    assert caught.value.failure.status == 401
    assert not caught.value.failure.retryable
    assert "key" in caught.value.failure.message.lower()


async def test_429_is_retryable_and_carries_retry_after(openai: Any) -> None:
    openai.adapter.headers["x-fake-status"] = "429"
    openai.adapter.headers["x-fake-retry-after"] = "3"
    try:
        with pytest.raises(ProviderFailure) as caught:
            await openai.chat(BODY)
    finally:
        del openai.adapter.headers["x-fake-status"], openai.adapter.headers["x-fake-retry-after"]
    failure = caught.value.failure
    assert (failure.status, failure.retryable, failure.retry_after_s) == (429, True, 3.0)


async def test_embeddings(openai: Any) -> None:
    answer = await openai.embeddings({"model": "text-embedding-3-small", "input": ["a", "b"]})
    assert [item["index"] for item in answer["data"]] == [0, 1]
    assert answer["usage"]["prompt_tokens"] > 0


async def test_openai_compatible_uses_the_same_paths(
    fake: BackgroundFakeUpstream, wire: Any
) -> None:
    compatible = wire(kind="openai_compatible", base_url=fake.base_url, api_key="sk-upstream")
    chunks = await compatible.stream(BODY)
    assert streamed_text(chunks)
    probe = compatible.adapter.health_call()
    assert probe is not None
    assert (await compatible.transport.send(probe)).status == 200
