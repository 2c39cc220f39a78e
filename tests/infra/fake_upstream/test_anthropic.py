"""Anthropic Messages over real HTTP, through the official ``anthropic`` SDK and raw httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import Base64ImageSourceParam, MessageParam, ToolParam, ToolUseBlockParam

from infra.fake_upstream.providers.reply import prompt_tokens
from infra.fake_upstream.server import BackgroundFakeUpstream
from schemas.tokens import count_text
from tests.infra.fake_upstream.conftest import KEY, sse_events

MODEL = "claude-sonnet-4-5"
ASK: list[MessageParam] = [{"role": "user", "content": "Tell me about tide pools."}]
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
LOOKUP: ToolParam = {
    "name": "lookup",
    "description": "Find a creature",
    "input_schema": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "count": {"type": "integer"}},
        "required": ["name"],
    },
}


@pytest.fixture
async def client(fake: BackgroundFakeUpstream) -> AsyncIterator[anthropic.AsyncAnthropic]:
    sdk = anthropic.AsyncAnthropic(base_url=fake.root_url, api_key=KEY, max_retries=0)
    yield sdk
    await sdk.close()


async def test_message_with_exact_usage(client: anthropic.AsyncAnthropic) -> None:
    raw = await client.messages.with_raw_response.create(
        model=MODEL, max_tokens=1024, system="Be brief.", messages=ASK
    )
    done = await raw.parse()
    assert done.id.startswith("msg_")
    assert done.type == "message"
    assert done.role == "assistant"
    assert done.model == MODEL
    assert done.stop_reason == "end_turn"
    assert done.stop_sequence is None
    text = done.content[0].text  # type: ignore[union-attr]
    assert done.usage.output_tokens == count_text(text, MODEL) == 24
    expected = prompt_tokens(MODEL, ["Be brief.", "Tell me about tide pools."])
    assert done.usage.input_tokens == expected
    assert done.usage.cache_read_input_tokens == 0
    assert raw.headers["request-id"].startswith("req_")
    counted = await client.messages.count_tokens(model=MODEL, system="Be brief.", messages=ASK)
    assert counted.input_tokens == expected


async def test_max_tokens_and_stop_sequences(client: anthropic.AsyncAnthropic) -> None:
    short = await client.messages.create(model=MODEL, max_tokens=5, messages=ASK)
    assert short.stop_reason == "max_tokens"
    assert short.usage.output_tokens == 5
    full = await client.messages.create(model=MODEL, max_tokens=100, messages=ASK)
    word = full.content[0].text.split()[3]  # type: ignore[union-attr]
    stopped = await client.messages.create(
        model=MODEL, max_tokens=100, messages=ASK, stop_sequences=[word]
    )
    assert stopped.stop_reason == "stop_sequence"
    assert stopped.stop_sequence == word
    assert word not in stopped.content[0].text  # type: ignore[union-attr]


async def test_stream_through_the_sdk_matches_the_json_answer(
    client: anthropic.AsyncAnthropic,
) -> None:
    whole = await client.messages.create(model=MODEL, max_tokens=1024, messages=ASK)
    async with client.messages.stream(model=MODEL, max_tokens=1024, messages=ASK) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == whole.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens
    assert final.stop_reason == "end_turn"


async def test_stream_framing_is_named_events(http: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "max_tokens": 3, "messages": ASK, "stream": True}
    answer = await http.post("/v1/messages", json=body, headers=HEADERS)
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = sse_events(answer.content)
    names = [name for name, _ in events]
    assert names == [
        "message_start", "content_block_start", "ping", "content_block_delta",
        "content_block_delta", "content_block_delta", "content_block_stop", "message_delta",
        "message_stop",
    ]  # fmt: skip
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["usage"]["output_tokens"] == 1
    assert start["content"] == []
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
        "usage": {"output_tokens": 3},
    }


async def test_tool_use_json_and_streamed(client: anthropic.AsyncAnthropic) -> None:
    done = await client.messages.create(model=MODEL, max_tokens=500, messages=ASK, tools=[LOOKUP])
    assert done.stop_reason == "tool_use"
    (block,) = done.content
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_")
    assert block.name == "lookup"
    assert isinstance(block.input, dict)
    assert isinstance(block.input["name"], str)
    async with client.messages.stream(
        model=MODEL, max_tokens=500, messages=ASK, tools=[LOOKUP]
    ) as stream:
        final = await stream.get_final_message()
    streamed = final.content[0]
    assert streamed.type == "tool_use"
    assert (streamed.id, streamed.name, streamed.input) == (block.id, block.name, block.input)
    tool_use: ToolUseBlockParam = {
        "type": "tool_use",
        "id": block.id,
        "name": block.name,
        "input": block.input,
    }
    history: list[MessageParam] = [
        *ASK,
        {"role": "assistant", "content": [tool_use]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "a crab"}],
        },
    ]
    closing = await client.messages.create(
        model=MODEL, max_tokens=500, messages=history, tools=[LOOKUP], tool_choice={"type": "any"}
    )
    assert closing.stop_reason == "end_turn"
    assert closing.content[0].type == "text"


async def test_images_count_85_tokens(client: anthropic.AsyncAnthropic) -> None:
    image: Base64ImageSourceParam = {
        "type": "base64",
        "media_type": "image/png",
        "data": "iVBORw0KGgo=",
    }
    messages: list[MessageParam] = [
        {
            "role": "user",
            "content": [{"type": "image", "source": image}, {"type": "text", "text": "What?"}],
        }
    ]
    done = await client.messages.create(model=MODEL, max_tokens=10, messages=messages)
    assert done.usage.input_tokens == prompt_tokens(MODEL, ["What?"], images=1)


@pytest.mark.parametrize(
    ("headers", "body", "status", "kind", "message"),
    [
        ({"anthropic-version": "2023-06-01"}, {}, 401, "authentication_error",
         "x-api-key header is required"),
        ({**HEADERS, "x-api-key": "wrong"}, {}, 401, "authentication_error", "invalid x-api-key"),
        ({"x-api-key": KEY}, {}, 400, "invalid_request_error",
         "anthropic-version: header is required"),
        (HEADERS, {"max_tokens": None}, 400, "invalid_request_error", "max_tokens: Field required"),
        (HEADERS, {"n": 2}, 400, "invalid_request_error", "n: Extra inputs are not permitted"),
        (HEADERS, {"model": "clade-3"}, 404, "not_found_error", "model: clade-3"),
        (HEADERS, {"messages": [{"role": "system", "content": "x"}]}, 400, "invalid_request_error",
         "messages.0.role: Input should be 'user' or 'assistant'"),
        (HEADERS, {"tool_choice": {"type": "any"}}, 400, "invalid_request_error",
         "tool_choice may only be specified while providing tools."),
    ],
)  # fmt: skip
async def test_errors_are_anthropic_shaped(  # noqa: PLR0917 (parametrized)
    http: httpx.AsyncClient,
    headers: dict[str, str],
    body: dict[str, Any],
    status: int,
    kind: str,
    message: str,
) -> None:
    request = {"model": MODEL, "max_tokens": 10, "messages": ASK, **body}
    request = {k: v for k, v in request.items() if v is not None}
    answer = await http.post("/v1/messages", json=request, headers=headers)
    assert answer.status_code == status
    assert answer.json() == {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": answer.headers["request-id"],
    }


async def test_scripted_429_and_529_through_the_sdk(
    http: httpx.AsyncClient, client: anthropic.AsyncAnthropic
) -> None:
    await http.post(
        "/_fake/faults", json={"provider": "anthropic", "status": 429, "retry_after": 3}
    )
    await http.post("/_fake/faults", json={"model": MODEL, "status": 529})
    with pytest.raises(anthropic.RateLimitError) as limited:
        await client.messages.create(model=MODEL, max_tokens=10, messages=ASK)
    assert limited.value.response.headers["retry-after"] == "3"
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        await client.messages.create(model=MODEL, max_tokens=10, messages=ASK)
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    forced = await http.post(
        "/v1/messages",
        json={"model": MODEL, "max_tokens": 5, "messages": ASK},
        headers={**HEADERS, "x-fake-status": "500"},
    )
    assert forced.json()["error"] == {"type": "api_error", "message": "Internal server error"}
    await client.messages.create(
        model=MODEL, max_tokens=10, messages=ASK, metadata={"user_id": "u"}
    )
    stats = (await http.get("/_fake/stats")).json()
    assert stats["providers"]["anthropic"]["requests"] == 1
    assert stats["models"][MODEL]["completion_tokens"] == 10
    last = (await http.get("/_fake/last?provider=anthropic")).json()
    assert last["auth_headers"] == ["authorization"]
    assert last["headers"]["anthropic-version"]
    assert last["body"]["metadata"] == {"user_id": "u"}
