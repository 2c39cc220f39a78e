"""The Anthropic adapter against the fake's /v1/messages: JSON, SSE, tools, JSON output,
errors; and what the provider actually received."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from infra.fake_upstream.server import BackgroundFakeUpstream
from ingress.exchange import ProviderFailure
from ingress.providers.base import UnsupportedError
from tests.ingress.providers.conftest import (
    last_request,
    script_fault,
    streamed_text,
    streamed_usage,
)

MODEL = "claude-sonnet-4-5"
BODY: dict[str, Any] = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello."},
    ],
    "max_tokens": 50,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def claude(fake: BackgroundFakeUpstream, wire: Any) -> Any:
    return wire(kind="anthropic", base_url=fake.root_url, api_key="sk-upstream")


async def test_chat_translates_both_ways(claude: Any, fake: BackgroundFakeUpstream) -> None:
    answer = await claude.chat(BODY)
    assert answer["object"] == "chat.completion" and answer["model"] == MODEL
    assert answer["choices"][0]["message"]["content"]
    assert answer["choices"][0]["finish_reason"] in ("stop", "length")
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    sent = last_request(fake, "anthropic")
    assert sent["body"]["system"] == "Be brief."
    assert sent["body"]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Say hello."}]}
    ]
    assert "x-api-key" in sent["auth_headers"] and sent["headers"]["anthropic-version"]


async def test_stream_matches_json(claude: Any) -> None:
    whole = await claude.chat(BODY)
    chunks = await claude.stream(BODY)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert streamed_text(chunks) == whole["choices"][0]["message"]["content"]
    assert streamed_usage(chunks) == whole["usage"]


async def test_tool_call_round_trip(claude: Any, fake: BackgroundFakeUpstream) -> None:
    ask = {**BODY, "tools": [WEATHER], "tool_choice": "required"}
    answer = await claude.chat(ask)
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert isinstance(orjson.loads(call["function"]["arguments"])["city"], str)
    assert last_request(fake, "anthropic")["body"]["tool_choice"] == {"type": "any"}

    chunks = await claude.stream(ask)
    starts = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c.get("choices") and c["choices"][0]["delta"].get("tool_calls")
    ]
    assert starts[0]["function"]["name"] == "get_weather" and starts[0]["id"]
    arguments = "".join(s["function"]["arguments"] for s in starts)
    assert isinstance(orjson.loads(arguments)["city"], str)

    follow = {
        **BODY,
        "tools": [WEATHER],
        "messages": [
            *BODY["messages"],
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
        ],
    }
    final = await claude.chat(follow)
    assert final["choices"][0]["message"]["content"]
    sent = last_request(fake, "anthropic")["body"]["messages"]
    assert sent[-1]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": call["id"],
        "content": "sunny",
    }
    assert sent[-2]["content"][0]["type"] == "tool_use"


async def test_json_schema_output_comes_back_as_text(claude: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    }
    ask = {
        **BODY,
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    }
    answer = await claude.chat(ask)
    assert isinstance(orjson.loads(answer["choices"][0]["message"]["content"])["answer"], str)
    assert answer["choices"][0]["finish_reason"] == "stop"


async def test_unsupported_parameters_are_refused_not_dropped(claude: Any) -> None:
    with pytest.raises(UnsupportedError, match="n"):
        await claude.chat({**BODY, "n": 2})
    with pytest.raises(UnsupportedError, match="logprobs"):
        await claude.chat({**BODY, "logprobs": True})
    with pytest.raises(UnsupportedError):
        await claude.embeddings({"model": MODEL, "input": "x"})


async def test_errors_in_anthropic_shape(
    claude: Any, fake: BackgroundFakeUpstream, wire: Any
) -> None:
    bad = wire(kind="anthropic", base_url=fake.root_url, api_key="wrong")
    with pytest.raises(ProviderFailure) as caught:
        await bad.chat(BODY)
    assert caught.value.failure.status == 401 and not caught.value.failure.retryable
    await script_fault(fake, model=MODEL, status=529, count=1, retry_after=2)
    with pytest.raises(ProviderFailure) as overloaded:
        await claude.chat(BODY)
    failure = overloaded.value.failure
    assert (failure.status, failure.retryable) == (529, True)
    assert failure.type == "overloaded_error" and failure.retry_after_s == 2.0
