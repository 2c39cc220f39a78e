"""The Gemini adapter: translation both ways on Google's own payloads, then against the fake."""

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
from ingress.providers.gemini import GeminiAdapter
from ingress.providers.gemini_answer import call_id
from schemas.routing_config import ProviderSettings
from schemas.tokens import count_text
from tests.ingress.providers.conftest import (
    feed_in_slices,
    last_request,
    script_fault,
    streamed_text,
    streamed_usage,
)

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
MODEL = "gemini-2.5-flash"
WEATHER: Json = {
    "type": "function",
    "function": {
        "name": "get_current_temperature",
        "description": "Current temperature at a place.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
            "additionalProperties": False,
        },
    },
}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def adapter(base_url: str = "https://generativelanguage.googleapis.com") -> GeminiAdapter:
    return GeminiAdapter(ProviderSettings(kind="gemini", base_url=base_url, api_key="AIza-test"))


def request(body: Json, model: str = MODEL, stream: bool = False) -> Json:
    call = adapter().chat_call({"model": "public", **body}, model, stream)
    return dict(orjson.loads(call.body))


# --- request ---------------------------------------------------------------------------


def test_call_targets_model_method_and_key_header() -> None:
    plain = adapter().chat_call({"messages": [{"role": "user", "content": "hi"}]}, MODEL, False)
    assert plain.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert plain.headers["x-goog-api-key"] == "AIza-test"
    streamed = adapter().chat_call({"messages": [{"role": "user", "content": "hi"}]}, MODEL, True)
    assert streamed.url.endswith("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    tuned = adapter().chat_call(
        {"messages": [{"role": "user", "content": "x"}]}, "tunedModels/t1", False
    )
    assert "/v1beta/tunedModels/t1:generateContent" in tuned.url
    probe = adapter().health_call()
    assert probe is not None and probe.method == "GET" and "/v1beta/models" in probe.url


def test_request_moves_system_merges_turns_and_maps_parts() -> None:
    sent = request(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
                {"role": "user", "content": "Look at these."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What differs?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                        },
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://example.com/cat.webp?x=1"},
                        },
                        {
                            "type": "input_audio",
                            "input_audio": {"data": "UklGRg==", "format": "mp3"},
                        },
                    ],
                },
            ]
        }
    )
    assert sent["systemInstruction"] == {
        "parts": [{"text": "Be brief."}, {"text": "Answer in English."}]
    }
    assert sent["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Look at these."},
                {"text": "What differs?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {
                    "fileData": {
                        "mimeType": "image/webp",
                        "fileUri": "https://example.com/cat.webp?x=1",
                    }
                },
                {"inlineData": {"mimeType": "audio/mp3", "data": "UklGRg=="}},
            ],
        }
    ]
    assert "generationConfig" not in sent and "tools" not in sent


def test_request_generation_config() -> None:
    sent = request(
        {
            "messages": [{"role": "user", "content": "Give JSON."}],
            "temperature": 0.2,
            "top_p": 0.9,
            "seed": 42,
            "n": 2,
            "max_completion_tokens": 300,
            "stop": "END",
            "presence_penalty": 0.5,
            "frequency_penalty": 0.25,
            "logprobs": True,
            "top_logprobs": 3,
            "reasoning_effort": "low",
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "city", "schema": {"type": "object", "properties": {}}},
            },
        }
    )
    assert sent["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "seed": 42,
        "candidateCount": 2,
        "maxOutputTokens": 300,
        "stopSequences": ["END"],
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
        "responseLogprobs": True,
        "logprobs": 3,
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object", "properties": {}},
        "thinkingConfig": {"thinkingBudget": 1024},
    }
    later = request({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "high"},
                    model="gemini-3-pro-preview")  # fmt: skip
    assert later["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "HIGH"}
    plain_json = request(
        {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}
    )
    assert plain_json["generationConfig"] == {"responseMimeType": "application/json"}


@pytest.mark.parametrize(
    ("choice", "strict", "expected"),
    [
        (None, False, None),
        ("auto", True, {"mode": "VALIDATED"}),
        ("none", False, {"mode": "NONE"}),
        ("required", False, {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_current_temperature"}},
            False,
            {"mode": "ANY", "allowedFunctionNames": ["get_current_temperature"]},
        ),
    ],
)
def test_request_tools_and_tool_choice(choice: Any, strict: bool, expected: Json | None) -> None:
    tool = {**WEATHER, "function": {**WEATHER["function"], "strict": strict}}
    body: Json = {"messages": [{"role": "user", "content": "Weather?"}], "tools": [tool]}
    if choice is not None:
        body["tool_choice"] = choice
    sent = request(body)
    declaration = sent["tools"][0]["functionDeclarations"][0]
    assert declaration == {
        "name": "get_current_temperature",
        "description": "Current temperature at a place.",
        "parametersJsonSchema": WEATHER["function"]["parameters"],  # JSON Schema, untouched
    }
    assert sent.get("toolConfig", {}).get("functionCallingConfig") == expected


def test_tool_round_trip_names_results_and_returns_thought_signatures() -> None:
    """An answer with parallel calls goes back as the next request, as a client sends it."""
    answer = adapter().chat_result(fixture("generate_tool_calls.json"), "public")
    message = answer["choices"][0]["message"]
    paris, london = message["tool_calls"]
    sent = request(
        {
            "tools": [WEATHER],
            "messages": [
                {"role": "user", "content": "Temperature in Paris and London?"},
                message,
                {"role": "tool", "tool_call_id": paris["id"], "content": '{"celsius": 21}'},
                {"role": "tool", "tool_call_id": london["id"], "content": "17 degrees"},
            ],
        },
        model="gemini-3-flash-preview",
    )
    model_turn, results = sent["contents"][1], sent["contents"][2]
    assert model_turn == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_current_temperature", "args": {"location": "Paris"}},
                "thoughtSignature": "EqkFCqYFAcu98PDp2ZHXzRK4z8BfmE3c2V0cEj0xS1xLQf0Vq4rS",
            },
            {"functionCall": {"name": "get_current_temperature", "args": {"location": "London"}}},
        ],
    }
    assert results == {  # one user turn holding both results, in call order
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_current_temperature", "response": {"celsius": 21}}},
            {
                "functionResponse": {
                    "name": "get_current_temperature",
                    "response": {"output": "17 degrees"},
                }
            },
        ],
    }


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"reasoning_effort": "none", "model_name": "gemini-3-pro-preview"}, "reasoning_effort"),
        ({"messages": [{"role": "tool", "tool_call_id": "call_x", "content": "1"}]}, "call_x"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}
                ]
            },
            "file ids",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_video", "x": 1}]}]},
            "input_video",
        ),
        (
            {"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {}}]}]},
            "only text",
        ),
    ],
)
def test_what_gemini_cannot_do_is_refused(extra: Json, match: str) -> None:
    model = extra.pop("model_name", MODEL)
    body = {"messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(UnsupportedError, match=match):
        request(body, model=model)


# --- answers ---------------------------------------------------------------------------


def test_result_text_skips_thoughts_and_counts_them_as_reasoning() -> None:
    answer = adapter().chat_result(fixture("generate_text.json"), "my-gemini")
    assert answer["object"] == "chat.completion" and answer["model"] == "my-gemini"
    choice = answer["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "The capital of France is Paris."}
    assert choice["finish_reason"] == "stop"
    assert answer["usage"] == {
        "prompt_tokens": 1240,
        "completion_tokens": 7 + 44,
        "total_tokens": 1291,  # Google's totalTokenCount
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 44},
    }


def test_result_tool_calls_get_stable_ids_and_carry_signatures() -> None:
    first = adapter().chat_result(fixture("generate_tool_calls.json"), "m")
    again = adapter().chat_result(fixture("generate_tool_calls.json"), "m")
    choice = first["choices"][0]
    calls = choice["message"]["tool_calls"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert [c["id"] for c in calls] == [
        c["id"] for c in again["choices"][0]["message"]["tool_calls"]
    ]
    assert calls[0]["id"] != calls[1]["id"]
    assert calls[0]["id"] == call_id("x8ZVaPqVMt6lnvgPwJaLqAM", 0, 0, "get_current_temperature")
    assert [orjson.loads(c["function"]["arguments"]) for c in calls] == [
        {"location": "Paris"},
        {"location": "London"},
    ]
    assert calls[0]["extra_content"] == {
        "google": {"thought_signature": "EqkFCqYFAcu98PDp2ZHXzRK4z8BfmE3c2V0cEj0xS1xLQf0Vq4rS"}
    }
    assert "extra_content" not in calls[1]
    assert first["usage"]["completion_tokens"] == 34 + 82
    native = {
        "candidates": [{"content": {"parts": [{"functionCall": {"id": "fc-1", "name": "f"}}]}}]
    }
    named = adapter().chat_result(orjson.dumps(native), "m")["choices"][0]["message"]
    assert named["tool_calls"][0]["id"] == "fc-1"  # an id Gemini gave is kept


def test_result_filters_and_blocked_prompts_are_content_filter() -> None:
    safety = {
        "candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": []}],
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
    }
    answer = adapter().chat_result(orjson.dumps(safety), "m")
    assert answer["choices"][0]["finish_reason"] == "content_filter"
    assert answer["usage"]["total_tokens"] == 8
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 5},
    }
    choice = adapter().chat_result(orjson.dumps(blocked), "m")["choices"][0]
    assert (choice["finish_reason"], choice["message"]["content"]) == ("content_filter", "")
    long = {"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "MAX_TOKENS"}]}
    assert adapter().chat_result(orjson.dumps(long), "m")["choices"][0]["finish_reason"] == "length"
    with pytest.raises(ValueError):
        adapter().chat_result(b'{"foo": 1}', "m")


def test_result_logprobs_as_openai_content() -> None:
    answer = {
        "candidates": [
            {
                "content": {"parts": [{"text": "Hi"}], "role": "model"},
                "finishReason": "STOP",
                "logprobsResult": {
                    "topCandidates": [
                        {"candidates": [{"token": "Hi", "logProbability": -0.1},
                                        {"token": "Hello", "logProbability": -2.4}]}
                    ],
                    "chosenCandidates": [{"token": "Hi", "tokenId": 2151, "logProbability": -0.1}],
                },
            }
        ]
    }  # fmt: skip
    logprobs = adapter().chat_result(orjson.dumps(answer), "m")["choices"][0]["logprobs"]
    assert logprobs["content"] == [
        {
            "token": "Hi",
            "logprob": -0.1,
            "bytes": [72, 105],
            "top_logprobs": [
                {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
                {"token": "Hello", "logprob": -2.4, "bytes": [72, 101, 108, 108, 111]},
            ],
        }
    ]


# --- streams ---------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(1,), (2, 3, 5), (7, 1, 64), (10_000,)])
def test_stream_text_in_awkward_slices(sizes: tuple[int, ...]) -> None:
    decoder = adapter().stream_decoder("my-gemini")
    chunks = feed_in_slices(decoder, fixture("stream_text.sse"), sizes)
    assert decoder.error is None
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert streamed_text(chunks) == "The capital of France is Paris. ✓"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    usages = [c for c in chunks if c.get("usage")]
    assert len(usages) == 1 and usages[0] is chunks[-1] and usages[0]["choices"] == []
    assert usages[0]["usage"] == {  # the last, cumulative usageMetadata
        "prompt_tokens": 9,
        "completion_tokens": 31,
        "total_tokens": 40,
        "completion_tokens_details": {"reasoning_tokens": 23},
    }
    assert {c["id"] for c in chunks} == {"pS9VaN3yHcWlnvgP_Yyp0Qs"}
    assert {c["model"] for c in chunks} == {"my-gemini"}


def test_stream_tool_call_start_arguments_and_signature() -> None:
    decoder = adapter().stream_decoder("m")
    chunks = feed_in_slices(decoder, fixture("stream_tool.sse"), (13,))
    assert decoder.error is None
    assert streamed_text(chunks) == "Let me check."
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks
             if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]  # fmt: skip
    assert calls[0]["id"] == call_id("a1b2c3", 0, 0, "get_current_temperature")
    assert calls[0]["function"] == {"name": "get_current_temperature", "arguments": ""}
    assert calls[0]["extra_content"] == {"google": {"thought_signature": "EqkFCqYFAcu98PDp"}}
    assert orjson.loads(calls[1]["function"]["arguments"]) == {"location": "Paris"}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert streamed_usage(chunks) == {
        "prompt_tokens": 60,
        "completion_tokens": 15,
        "total_tokens": 75,
    }


def test_stream_error_event_and_cut_stream_set_error() -> None:
    decoder = adapter().stream_decoder("m")
    head = fixture("stream_text.sse").split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    overloaded = {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
    error = b"data: " + orjson.dumps({"error": overloaded}) + b"\r\n\r\n"
    assert streamed_text(decoder.feed(head)) == "The capital"
    assert decoder.feed(error) == []
    assert decoder.error is not None
    assert (decoder.error.status, decoder.error.type) == (503, "UNAVAILABLE")
    assert decoder.error.retryable
    cut = adapter().stream_decoder("m")
    cut.feed(head)
    assert not [c for c in cut.close() if c.get("usage")]  # no usage for a cut stream
    assert cut.error is not None and cut.error.status == 502


# --- failures and embeddings -----------------------------------------------------------


def test_failures_read_google_error_bodies() -> None:
    limited = adapter().failure(429, fixture("error_429.json"), {})
    assert (limited.status, limited.type, limited.retry_after_s) == (
        429,
        "RESOURCE_EXHAUSTED",
        37.0,
    )
    assert limited.retryable and "quota" in limited.message
    bad_key = adapter().failure(400, fixture("error_bad_key.json"), {})
    assert (bad_key.status, bad_key.retryable) == (401, False)  # Google says 400; it is the key
    listed = adapter().failure(
        500, b'[{"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}]', {}
    )
    assert (listed.message, listed.type) == ("boom", "INTERNAL")
    header = adapter().failure(503, b"<html>Service Unavailable</html>", {"retry-after": "2"})
    assert (header.status, header.retry_after_s) == (503, 2.0)


def test_embeddings_batch_request_and_openai_answer() -> None:
    gemini = adapter()
    body = {"model": "embed", "input": ["hello", "good bye"], "dimensions": 256}
    call = gemini.embeddings_call(body, "gemini-embedding-001")
    assert call.url.endswith("/v1beta/models/gemini-embedding-001:batchEmbedContents")
    assert orjson.loads(call.body) == {
        "requests": [
            {"model": "models/gemini-embedding-001", "outputDimensionality": 256,
             "content": {"parts": [{"text": "hello"}]}},
            {"model": "models/gemini-embedding-001", "outputDimensionality": 256,
             "content": {"parts": [{"text": "good bye"}]}},
        ]
    }  # fmt: skip
    payload = orjson.dumps({"embeddings": [{"values": [0.5, -0.25]}, {"values": [1.0, 0.0]}]})
    answer = gemini.embeddings_result(payload, "embed", body)
    estimate = count_text("hello", "embed") + count_text("good bye", "embed")
    assert answer == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -0.25]},
            {"object": "embedding", "index": 1, "embedding": [1.0, 0.0]},
        ],
        "model": "embed",
        "usage": {"prompt_tokens": estimate, "total_tokens": estimate},
    }
    as_base64 = {"model": "e", "input": "x", "encoding_format": "base64"}
    gemini.embeddings_call(as_base64, "g")
    packed = gemini.embeddings_result(payload, "e", as_base64)["data"][0]["embedding"]
    assert struct.unpack("<2f", base64.b64decode(packed)) == (0.5, -0.25)
    with pytest.raises(UnsupportedError, match="text"):
        gemini.embeddings_call({"model": "e", "input": [[1, 2, 3]]}, "g")


# --- against the fake upstream ---------------------------------------------------------


@pytest.fixture
def gemini(fake: BackgroundFakeUpstream, wire: Any) -> Any:
    return wire(kind="gemini", base_url=fake.root_url, api_key="sk-upstream")


BODY = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "Say hello."}]}


async def test_fake_chat_and_stream_agree(gemini: Any, fake: BackgroundFakeUpstream) -> None:
    whole = await gemini.chat({**BODY, "seed": 7})
    assert whole["object"] == "chat.completion" and whole["choices"][0]["finish_reason"] == "stop"
    sent = last_request(fake, "gemini")
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert "x-goog-api-key" in sent["auth_headers"]
    chunks = await gemini.stream({**BODY, "seed": 7})
    assert last_request(fake, "gemini")["query"].get("alt") == "sse"
    assert streamed_text(chunks) == whole["choices"][0]["message"]["content"]
    assert streamed_usage(chunks) == whole["usage"]
    usage = whole["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


async def test_fake_tool_round_trip(gemini: Any, fake: BackgroundFakeUpstream) -> None:
    body: Json = {**BODY, "tools": [WEATHER], "tool_choice": "required"}
    answer = await gemini.chat(body)
    message = answer["choices"][0]["message"]
    assert answer["choices"][0]["finish_reason"] == "tool_calls"
    call = message["tool_calls"][0]
    assert "location" in orjson.loads(call["function"]["arguments"])
    chunks = await gemini.stream(body)
    starts = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks
              if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]  # fmt: skip
    assert starts[0]["function"]["name"] == "get_current_temperature"
    follow_up = {
        **BODY,
        "tools": [WEATHER],
        "messages": [
            *BODY["messages"],
            message,
            {"role": "tool", "tool_call_id": call["id"], "content": '{"celsius": 21}'},
        ],
    }
    final = await gemini.chat(follow_up)
    assert final["choices"][0]["message"]["content"]
    sent = last_request(fake, "gemini")["body"]["contents"]
    assert sent[-1]["parts"][0]["functionResponse"]["name"] == "get_current_temperature"


async def test_fake_bad_key_is_a_non_retryable_401(fake: BackgroundFakeUpstream, wire: Any) -> None:
    bad = wire(kind="gemini", base_url=fake.root_url, api_key="AIza-wrong")
    with pytest.raises(ProviderFailure) as caught:
        await bad.chat(BODY)
    assert caught.value.failure.status == 401
    assert not caught.value.failure.retryable
    assert "key" in caught.value.failure.message.lower()


async def test_fake_429_is_retryable_with_retry_delay(
    gemini: Any, fake: BackgroundFakeUpstream
) -> None:
    await script_fault(fake, model="gemini-2.5-flash", status=429, count=1, retry_after=3)
    with pytest.raises(ProviderFailure) as caught:
        await gemini.chat(BODY)
    failure = caught.value.failure
    assert (failure.status, failure.retryable, failure.retry_after_s) == (429, True, 3.0)
    assert failure.type == "RESOURCE_EXHAUSTED"


async def test_fake_embeddings(gemini: Any, fake: BackgroundFakeUpstream) -> None:
    answer = await gemini.embeddings(
        {"model": "gemini-embedding-001", "input": ["a cat", "a dog"], "dimensions": 64}
    )
    assert [item["index"] for item in answer["data"]] == [0, 1]
    assert len(answer["data"][0]["embedding"]) == 64
    assert answer["usage"]["prompt_tokens"] > 0
    sent = last_request(fake, "gemini")
    assert sent["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"


def test_usage_reports_image_and_audio_parts_by_modality() -> None:
    from ingress.providers.gemini_answer import usage

    meta = {
        "promptTokenCount": 1290,
        "candidatesTokenCount": 40,
        "totalTokenCount": 1330,
        "promptTokensDetails": [
            {"modality": "TEXT", "tokenCount": 10},
            {"modality": "IMAGE", "tokenCount": 1032},
            {"modality": "AUDIO", "tokenCount": 248},
        ],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 40}],
    }
    assert usage(meta) == {
        "prompt_tokens": 1290,
        "completion_tokens": 40,
        "total_tokens": 1330,
        "prompt_tokens_details": {"audio_tokens": 248, "image_tokens": 1032},
    }
