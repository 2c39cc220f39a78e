"""The Cohere v2 adapter: translation both ways on Cohere's own payloads, then against the fake."""

from __future__ import annotations

import base64
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest

from infra.fake_upstream.server import BackgroundFakeUpstream
from ingress.exchange import ProviderFailure
from ingress.providers.base import Json, UnsupportedError
from ingress.providers.cohere import CohereAdapter
from schemas.routing_config import ProviderSettings
from tests.ingress.providers.conftest import (
    feed_in_slices,
    last_request,
    script_fault,
    streamed_text,
    streamed_usage,
)

FIXTURES = Path(__file__).parent / "fixtures" / "cohere"
MODEL = "command-a-03-2025"
WEATHER: Json = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather at a place.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}
OTHER: Json = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object"}},
}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def adapter() -> CohereAdapter:
    return CohereAdapter(ProviderSettings(kind="cohere", api_key="co-test"))


def request(body: Json, stream: bool = False) -> Json:
    call = adapter().chat_call({"model": "public", **body}, MODEL, stream)
    return dict(orjson.loads(call.body))


def tool_deltas(chunks: list[Json]) -> list[Json]:
    return [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]


# --- request ---------------------------------------------------------------------------


def test_call_url_auth_and_health() -> None:
    call = adapter().chat_call({"messages": [{"role": "user", "content": "hi"}]}, MODEL, True)
    assert call.url == "https://api.cohere.com/v2/chat"
    assert call.headers["authorization"] == "Bearer co-test"
    assert orjson.loads(call.body)["stream"] is True
    probe = adapter().health_call()
    assert probe is not None and probe.method == "GET"
    assert probe.url.startswith("https://api.cohere.com/v1/models")


def test_request_messages_and_knobs() -> None:
    sent = request(
        {
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://x.org/a.png", "detail": "low"},
                        },
                    ],
                },
            ],
            "temperature": 0.3,
            "top_p": 1,
            "seed": 9,
            "max_tokens": 200,
            "stop": ["\n\n"],
            "presence_penalty": 0.1,
            "frequency_penalty": 0.2,
            "logprobs": True,
            "reasoning_effort": "none",
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "object"}},
            },
            "user": "u-1",  # informational only
        }
    )
    assert sent == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://x.org/a.png", "detail": "low"},
                    },
                ],
            },
        ],
        "stream": False,
        "temperature": 0.3,
        "p": 0.99,  # Cohere's upper bound
        "seed": 9,
        "max_tokens": 200,
        "stop_sequences": ["\n\n"],
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "logprobs": True,
        "thinking": {"type": "disabled"},
        "response_format": {"type": "json_object", "json_schema": {"type": "object"}},
    }


@pytest.mark.parametrize(
    ("choice", "names", "expected"),
    [
        (None, ["get_weather", "get_time"], None),
        ("auto", ["get_weather", "get_time"], None),
        ("none", ["get_weather", "get_time"], "NONE"),
        ("required", ["get_weather", "get_time"], "REQUIRED"),
        ({"type": "function", "function": {"name": "get_time"}}, ["get_time"], "REQUIRED"),
    ],
)
def test_request_tool_choice(choice: Any, names: list[str], expected: str | None) -> None:
    body: Json = {"messages": [{"role": "user", "content": "?"}], "tools": [WEATHER, OTHER]}
    if choice is not None:
        body["tool_choice"] = choice
    sent = request(body)
    assert [tool["function"]["name"] for tool in sent["tools"]] == names
    assert sent.get("tool_choice") == expected
    assert sent["tools"][0]["type"] == "function"


def test_tool_round_trip_plan_becomes_content_and_back() -> None:
    answer = adapter().chat_result(fixture("chat_tool.json"), "public")
    message = answer["choices"][0]["message"]
    assert message["content"] == "I will look up the weather in Toronto."
    call = message["tool_calls"][0]
    assert call == {
        "id": "get_weather_1byjy32y4hvq",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location":"Toronto"}'},
    }
    sent = request(
        {
            "tools": [WEATHER],
            "messages": [
                {"role": "user", "content": "Weather in Toronto?"},
                message,
                {"role": "tool", "tool_call_id": call["id"], "content": '{"temperature": "21C"}'},
            ],
        }
    )
    assert sent["messages"][1:] == [
        {
            "role": "assistant",
            "tool_calls": [call],
            "tool_plan": "I will look up the weather in Toronto.",
        },
        {
            "role": "tool",
            "tool_call_id": "get_weather_1byjy32y4hvq",
            "content": [{"type": "text", "text": '{"temperature": "21C"}'}],
        },
    ]


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"n": 2}, "`n`"),
        ({"logprobs": True, "top_logprobs": 2}, "top_logprobs"),
        ({"logit_bias": {"1": 1}}, "logit_bias"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"presence_penalty": -0.5}, "presence_penalty"),
        ({"reasoning_effort": "xhigh"}, "reasoning_effort"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "nope",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "input_audio",
        ),
    ],
)
def test_what_cohere_cannot_do_is_refused(extra: Json, match: str) -> None:
    with pytest.raises(UnsupportedError, match=match):
        request({"messages": [{"role": "user", "content": "hi"}], **extra})


# --- answers ---------------------------------------------------------------------------


def test_result_text_usage_and_logprobs() -> None:
    answer = adapter().chat_result(fixture("chat_text.json"), "my-command")
    assert (
        answer["id"] == "c14c80c3-18eb-4519-9460-6c92edd8cfb4" and answer["model"] == "my-command"
    )
    choice = answer["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Hello! How can I help you today?"}
    assert choice["finish_reason"] == "stop"
    assert answer["usage"] == {  # tokens (what the model saw), not billed_units
        "prompt_tokens": 71,
        "completion_tokens": 10,
        "total_tokens": 81,
        "prompt_tokens_details": {"cached_tokens": 64},
    }
    assert choice["logprobs"]["content"] == [
        {"token": "Hello", "logprob": -0.0105, "bytes": list(b"Hello"), "top_logprobs": []},
        {
            "token": "! How",
            "logprob": pytest.approx(-0.33),
            "bytes": list(b"! How"),
            "top_logprobs": [],
        },
    ]
    billed_only = {
        "id": "x",
        "finish_reason": "MAX_TOKENS",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
        "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 1}},
    }
    fallback = adapter().chat_result(orjson.dumps(billed_only), "m")
    assert fallback["choices"][0]["finish_reason"] == "length"
    assert fallback["usage"]["total_tokens"] == 4
    with pytest.raises(ValueError, match="ERROR"):
        adapter().chat_result(orjson.dumps({**billed_only, "finish_reason": "ERROR"}), "m")


# --- streams ---------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(1,), (3, 11), (64, 2), (100_000,)])
def test_stream_text_skips_thinking_in_awkward_slices(sizes: tuple[int, ...]) -> None:
    decoder = adapter().stream_decoder("my-command")
    chunks = feed_in_slices(decoder, fixture("stream_text.sse"), sizes)
    assert decoder.error is None
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert streamed_text(chunks) == "Hello there — hi!"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 69,
        "completion_tokens": 7,
        "total_tokens": 76,
    }
    assert {c["id"] for c in chunks} == {"29f14a5a-11de-4cae-9800-25e4747408ea"}


def test_stream_tool_plan_and_call_match_the_json_shape() -> None:
    decoder = adapter().stream_decoder("m")
    chunks = feed_in_slices(decoder, fixture("stream_tool.sse"), (5,))
    assert decoder.error is None
    assert streamed_text(chunks) == "I will look up the weather."
    deltas = tool_deltas(chunks)
    assert deltas[0]["id"] == "get_weather_nsz5zm3w56q3"
    assert deltas[0]["function"] == {"name": "get_weather", "arguments": ""}
    arguments = "".join(d["function"]["arguments"] for d in deltas)
    assert orjson.loads(arguments) == {"location": "Toronto"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert streamed_usage(chunks) == {
        "prompt_tokens": 1048,
        "completion_tokens": 28,
        "total_tokens": 1076,
    }


def test_stream_error_at_message_end_and_cut_stream() -> None:
    decoder = adapter().stream_decoder("m")
    head = fixture("stream_text.sse").split(b"event: message-end")[0]
    decoder.feed(head)
    failed = {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "internal error"}}
    end = b"event: message-end\ndata: " + orjson.dumps(failed) + b"\n\n"
    assert decoder.feed(end) == []
    assert decoder.error is not None and decoder.error.message == "internal error"
    cut = adapter().stream_decoder("m")
    cut.feed(head)
    assert not [c for c in cut.close() if c.get("usage")]
    assert cut.error is not None and cut.error.status == 502


# --- failures and embeddings -----------------------------------------------------------


def test_failures_read_cohere_error_bodies() -> None:
    failure = adapter().failure(
        429,
        b'{"id": "9b3f", "message": "You are past the per minute request limit"}',
        {"retry-after": "3"},
    )
    assert (failure.status, failure.retryable, failure.retry_after_s) == (429, True, 3.0)
    assert failure.message.startswith("You are past")
    unauthorized = adapter().failure(401, b'{"message": "invalid api token"}', {})
    assert (unauthorized.status, unauthorized.retryable) == (401, False)
    assert adapter().failure(502, b"Bad Gateway", {}).message == "Bad Gateway"


def test_embeddings_request_and_openai_answer() -> None:
    cohere = adapter()
    body = {"model": "e", "input": ["hello", "goodbye"], "dimensions": 512}
    call = cohere.embeddings_call(body, "embed-v4.0")
    assert call.url == "https://api.cohere.com/v2/embed"
    assert orjson.loads(call.body) == {
        "model": "embed-v4.0",
        "texts": ["hello", "goodbye"],
        "input_type": "search_document",
        "embedding_types": ["float"],
        "output_dimension": 512,
    }
    query = cohere.embeddings_call({"model": "e", "input": "q", "input_type": "search_query"}, "m")
    assert orjson.loads(query.body)["input_type"] == "search_query"
    answer = cohere.embeddings_result(fixture("embed.json"), "my-embed", body)
    assert answer["object"] == "list" and answer["model"] == "my-embed"
    assert [d["index"] for d in answer["data"]] == [0, 1]
    assert answer["data"][0]["embedding"] == [0.016296387, -0.008354187, -0.04699707]
    assert answer["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    as_base64 = {"model": "e", "input": "x", "encoding_format": "base64"}
    cohere.embeddings_call(as_base64, "m")
    packed = cohere.embeddings_result(fixture("embed.json"), "e", as_base64)["data"][1]["embedding"]
    assert struct.unpack("<3f", base64.b64decode(packed)) == pytest.approx(
        [-0.0423584, 0.0159302, 0.0105286]
    )
    with pytest.raises(UnsupportedError, match="96"):
        cohere.embeddings_call({"model": "e", "input": ["x"] * 97}, "m")


# --- against the fake upstream ---------------------------------------------------------


@pytest.fixture
def cohere(fake: BackgroundFakeUpstream, wire: Any) -> Any:
    return wire(kind="cohere", base_url=fake.root_url, api_key="sk-upstream")


BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}]}


async def test_fake_chat_and_stream_agree(cohere: Any, fake: BackgroundFakeUpstream) -> None:
    whole = await cohere.chat({**BODY, "seed": 7})
    assert whole["choices"][0]["message"]["content"]
    assert whole["choices"][0]["finish_reason"] == "stop"
    sent = last_request(fake, "cohere")
    assert sent["path"] == "/v2/chat" and sent["body"]["model"] == MODEL
    chunks = await cohere.stream({**BODY, "seed": 7})
    assert streamed_text(chunks) == whole["choices"][0]["message"]["content"]
    assert streamed_usage(chunks) == whole["usage"]
    usage = whole["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


async def test_fake_tool_round_trip(cohere: Any, fake: BackgroundFakeUpstream) -> None:
    body: Json = {**BODY, "tools": [WEATHER], "tool_choice": "required"}
    answer = await cohere.chat(body)
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert "location" in orjson.loads(call["function"]["arguments"])
    chunks = await cohere.stream(body)
    deltas = tool_deltas(chunks)
    assert deltas[0]["id"] == call["id"]
    assert "".join(d["function"]["arguments"] for d in deltas) == call["function"]["arguments"]
    assert streamed_text(chunks) == choice["message"]["content"]  # the tool plan, both ways
    assert streamed_usage(chunks) == answer["usage"]
    follow_up = {
        **BODY,
        "tools": [WEATHER],
        "messages": [
            *BODY["messages"],
            choice["message"],
            {"role": "tool", "tool_call_id": call["id"], "content": '{"celsius": 21}'},
        ],
    }
    final = await cohere.chat(follow_up)
    assert final["choices"][0]["message"]["content"]
    sent = last_request(fake, "cohere")["body"]["messages"]
    assert sent[1]["tool_plan"] and sent[2]["tool_call_id"] == call["id"]


async def test_fake_bad_key_is_a_non_retryable_401(fake: BackgroundFakeUpstream, wire: Any) -> None:
    bad = wire(kind="cohere", base_url=fake.root_url, api_key="co-wrong")
    with pytest.raises(ProviderFailure) as caught:
        await bad.chat(BODY)
    assert (caught.value.failure.status, caught.value.failure.retryable) == (401, False)
    assert "token" in caught.value.failure.message


async def test_fake_429_is_retryable_with_retry_after(
    cohere: Any, fake: BackgroundFakeUpstream
) -> None:
    await script_fault(fake, model=MODEL, status=429, count=1, retry_after=3)
    with pytest.raises(ProviderFailure) as caught:
        await cohere.chat(BODY)
    failure = caught.value.failure
    assert (failure.status, failure.retryable, failure.retry_after_s) == (429, True, 3.0)


async def test_fake_embeddings(cohere: Any, fake: BackgroundFakeUpstream) -> None:
    answer = await cohere.embeddings({"model": "embed-v4.0", "input": ["a cat", "a dog"]})
    assert [item["index"] for item in answer["data"]] == [0, 1]
    assert answer["data"][0]["embedding"] and answer["usage"]["prompt_tokens"] > 0
    assert last_request(fake, "cohere")["path"] == "/v2/embed"
