"""OpenAI beyond plain text, through the official SDK: tools, JSON output, logprobs, images;
and the control routes every provider shares (scripted faults, last request)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from infra.fake_upstream.server import BackgroundFakeUpstream
from schemas.tokens import count_chat_prompt, count_text
from tests.infra.fake_upstream.conftest import KEY

MODEL = "gpt-4o-mini"
ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Weather in Paris?"}]
WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "hourly": {"type": "boolean"},
                "spots": {"type": "array", "items": {"type": "number"}, "minItems": 2},
            },
            "required": ["city", "unit", "days", "hourly", "spots"],
            "additionalProperties": False,
        },
    },
}
NOTE: ChatCompletionToolParam = {
    "type": "function",
    "function": {"name": "take_note", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture
async def client(fake: BackgroundFakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0)
    yield sdk
    await sdk.close()


def _satisfies_weather(arguments: dict[str, Any]) -> None:
    assert set(arguments) == {"city", "unit", "days", "hourly", "spots"}
    assert isinstance(arguments["city"], str)
    assert arguments["unit"] in ("c", "f")
    assert isinstance(arguments["days"], int)
    assert 1 <= arguments["days"] <= 7
    assert isinstance(arguments["hourly"], bool)
    assert len(arguments["spots"]) >= 2
    assert all(isinstance(x, int | float) for x in arguments["spots"])


async def test_tools_answer_with_a_call_that_fits_the_schema(client: openai.AsyncOpenAI) -> None:
    done = await client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER, NOTE])
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_")
    assert call.type == "function"
    assert call.function.name == "get_weather"
    _satisfies_weather(json.loads(call.function.arguments))
    assert done.usage is not None
    assert done.usage.completion_tokens == count_text(call.function.arguments, MODEL)
    again = await client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER, NOTE])
    assert again.choices[0].message.tool_calls == choice.message.tool_calls


async def test_tool_choice_named_none_and_round_trip(client: openai.AsyncOpenAI) -> None:
    named = await client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=[WEATHER, NOTE],
        tool_choice={"type": "function", "function": {"name": "take_note"}},
    )
    calls = named.choices[0].message.tool_calls
    assert calls is not None
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "take_note"
    assert call.function.arguments == "{}"
    plain = await client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="none"
    )
    assert plain.choices[0].message.tool_calls is None
    assert plain.choices[0].finish_reason == "stop"
    history: list[ChatCompletionMessageParam] = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ]
    closing = await client.chat.completions.create(
        model=MODEL, messages=history, tools=[WEATHER], tool_choice="required"
    )
    assert closing.choices[0].finish_reason == "stop"
    assert closing.choices[0].message.content


async def test_tool_call_streams_as_openai_deltas(client: openai.AsyncOpenAI) -> None:
    whole = await client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER])
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=[WEATHER],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    first = chunks[0].choices[0].delta
    assert first.role == "assistant"
    assert first.tool_calls is not None
    opening = first.tool_calls[0]
    assert opening.id is not None
    assert opening.id.startswith("call_")
    assert opening.function is not None
    assert opening.function.name == "get_weather"
    assert opening.function.arguments == ""
    fragments = [
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks[1:]
        if c.choices and c.choices[0].delta.tool_calls and c.choices[0].delta.tool_calls[0].function
    ]
    assert len(fragments) > 1
    expected = whole.choices[0].message.tool_calls
    assert expected is not None
    expected_call = expected[0]
    assert expected_call.type == "function"
    assert "".join(fragments) == expected_call.function.arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage == whole.usage


async def test_json_schema_and_json_object(client: openai.AsyncOpenAI) -> None:
    schema: dict[str, object] = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 12},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "maxItems": 3},
            "score": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "null"}]},
        },
        "required": ["title", "tags", "score"],
        "$defs": {"tag": {"type": "string", "enum": ["a", "b"]}},
    }
    done = await client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "card", "schema": schema, "strict": True},
        },
    )
    document = json.loads(done.choices[0].message.content or "")
    assert set(document) == {"title", "tags", "score"}
    assert len(document["title"]) <= 12
    assert document["tags"]
    assert set(document["tags"]) <= {"a", "b"}
    assert 0 <= document["score"] <= 1
    loose = await client.chat.completions.create(
        model=MODEL, messages=ASK, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(loose.choices[0].message.content or ""), dict)


async def test_logprobs_are_per_token_and_deterministic(client: openai.AsyncOpenAI) -> None:
    done = await client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=5, logprobs=True, top_logprobs=3
    )
    probs = done.choices[0].logprobs
    assert probs is not None
    assert probs.content is not None
    assert "".join(p.token for p in probs.content) == done.choices[0].message.content
    for entry in probs.content:
        assert entry.bytes == list(entry.token.encode())
        assert len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].token == entry.token
        assert entry.logprob <= 0
    stream = await client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=5, logprobs=True, top_logprobs=3, stream=True
    )
    streamed = [
        c.choices[0].logprobs.content[0]
        async for c in stream
        if c.choices and c.choices[0].logprobs and c.choices[0].logprobs.content
    ]
    assert streamed == probs.content
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model=MODEL, messages=ASK, top_logprobs=2)
    assert caught.value.body["param"] == "top_logprobs"  # type: ignore[index]


async def test_images_count_85_prompt_tokens_each(client: openai.AsyncOpenAI) -> None:
    text = "What is in these pictures?"
    messages: list[ChatCompletionMessageParam] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/a.jpg", "detail": "low"},
                },
            ],
        }
    ]
    done = await client.chat.completions.create(model=MODEL, messages=messages, n=2, seed=3)
    assert done.usage is not None
    plain = count_chat_prompt([{"role": "user", "content": text}], MODEL)
    assert done.usage.prompt_tokens == plain + 2 * 85
    assert len(done.choices) == 2
    assert done.usage.completion_tokens == 48


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {"tools": [{"type": "function", "function": {"name": "bad name"}}]},
            "tools[0].function.name",
        ),
        ({"tool_choice": "auto"}, "tool_choice"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
        ),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
    ],
)
async def test_malformed_features_are_openai_400s(
    http: httpx.AsyncClient, extra: dict[str, Any], param: str
) -> None:
    body = {"model": MODEL, "messages": ASK, **extra}
    answer = await http.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param
    assert answer.json()["error"]["type"] == "invalid_request_error"


async def test_scripted_faults_are_consumed_in_order(
    http: httpx.AsyncClient, client: openai.AsyncOpenAI
) -> None:
    queued = await http.post(
        "/_fake/faults", json={"model": MODEL, "status": 429, "count": 2, "retry_after": 7}
    )
    assert queued.status_code == 201
    assert queued.json()["queued"][0]["count"] == 2
    other = await client.chat.completions.create(model="gpt-4o", messages=ASK)
    assert other.choices[0].finish_reason == "stop"
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model=MODEL, messages=ASK)
        assert caught.value.response.headers["retry-after"] == "7"
    assert (await http.get("/_fake/faults")).json() == {"queued": []}
    await client.chat.completions.create(model=MODEL, messages=ASK)
    await http.post("/_fake/faults", json={"status": 503})
    assert len((await http.get("/_fake/faults")).json()["queued"]) == 1
    assert (await http.delete("/_fake/faults")).json() == {"queued": []}
    await client.chat.completions.create(model=MODEL, messages=ASK)
    stats = (await http.get("/_fake/stats")).json()
    assert stats["statuses"] == {"200": 3, "429": 2}
    assert stats["providers"]["openai"]["requests"] == 3


async def test_scripted_stream_break_latency_and_drop(
    http: httpx.AsyncClient, client: openai.AsyncOpenAI
) -> None:
    await http.post("/_fake/faults", json={"after_chunks": 3})
    stream = await client.chat.completions.create(model=MODEL, messages=ASK, stream=True)
    seen = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 3
    await http.post("/_fake/faults", json={"drop": True})
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model=MODEL, messages=ASK)
    await http.post("/_fake/faults", json={"latency_ms": 300, "status": 500})
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model=MODEL, messages=ASK)
    stats = (await http.get("/_fake/stats")).json()
    assert stats["disconnects"] == 2
    assert stats["models"] == {}


@pytest.mark.parametrize(
    "spec",
    [{"status": 99}, {"count": 0, "status": 500}, {"nope": 1}, {}, {"drop": "yes"}, [1]],
)
async def test_malformed_fault_specs_are_refused(http: httpx.AsyncClient, spec: Any) -> None:
    answer = await http.post("/_fake/faults", json=spec)
    assert answer.status_code == 400
    assert answer.json()["error"]


async def test_last_request_keeps_body_and_header_names_not_secrets(
    http: httpx.AsyncClient, client: openai.AsyncOpenAI
) -> None:
    assert (await http.get("/_fake/last?provider=openai")).status_code == 404
    await client.chat.completions.create(model=MODEL, messages=ASK, user="u-1")
    last = (await http.get("/_fake/last", params={"provider": "openai"})).json()
    assert last["provider"] == "openai"
    assert last["method"] == "POST"
    assert last["path"] == "/v1/chat/completions"
    assert last["body"] == {"messages": ASK, "model": MODEL, "user": "u-1"}
    assert last["auth_headers"] == ["authorization"]
    assert "authorization" not in last["headers"]
    assert KEY not in json.dumps(last)
    assert last["headers"]["content-type"] == "application/json"
    assert (await http.get("/_fake/last")).json()["seq"] == last["seq"]
