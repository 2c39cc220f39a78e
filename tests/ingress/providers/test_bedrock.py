"""The Bedrock Converse adapter: signing, translation both ways on Converse's own payloads,
the event stream in awkward slices, errors, Titan embeddings; then against the fake."""

from __future__ import annotations

import base64
import re
import struct
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yarl
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from infra.fake_upstream.providers import eventstream
from infra.fake_upstream.server import BackgroundFakeUpstream
from ingress.exchange import ProviderFailure
from ingress.providers.base import Json, UnsupportedError, UpstreamCall
from ingress.providers.bedrock import BedrockAdapter
from schemas.routing_config import ProviderSettings
from tests.ingress.providers.conftest import (
    feed_in_slices,
    last_request,
    script_fault,
    streamed_text,
    streamed_usage,
)

FIXTURES = Path(__file__).parent / "fixtures" / "bedrock"
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
PROFILE_ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
    "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
)
KEYS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "wJalrXUtnFEMI"}
SONG: Json = {
    "type": "function",
    "function": {
        "name": "top_song",
        "description": "The most popular song on a radio station.",
        "parameters": {
            "type": "object",
            "properties": {"sign": {"type": "string"}},
            "required": ["sign"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the most popular song on WZPZ?"}]
CALL = {
    "id": "call_abc123",
    "type": "function",
    "function": {"name": "top_song", "arguments": '{"sign": "WZPZ"}'},
}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def adapter(**settings: Any) -> BedrockAdapter:
    return BedrockAdapter(ProviderSettings(kind="bedrock", region="us-west-2", **KEYS, **settings))


def request(body: Json) -> Json:
    call = adapter().chat_call({"model": "public", **body}, MODEL, False)
    return dict(orjson.loads(call.body))


def recomputed_signature(call: UpstreamCall, secret: str, token: str | None = None) -> str:
    """What botocore computes over what is sent: the headers named in SignedHeaders."""
    headers = {name.lower(): value for name, value in call.headers.items()}
    signed = re.search(r"SignedHeaders=([^,]+)", headers["authorization"])
    assert signed is not None
    names = [h for h in signed.group(1).split(";") if h != "host"]  # host: from the URL
    aws = AWSRequest("POST", call.url, {h: headers[h] for h in names}, call.body)
    aws.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(
        Credentials(KEYS["aws_access_key_id"], secret, token), "bedrock", "us-west-2"
    )
    return signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)


def encode(events: list[Any]) -> bytes:
    return b"".join(eventstream.event(name, payload) for name, payload in events)


def tool_deltas(chunks: list[Json]) -> list[Json]:
    return [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]


# --- the call: URL, signature, credentials -------------------------------------------------


def test_url_encodes_model_ids_as_sent_and_health_is_none() -> None:
    bedrock = adapter()
    call = bedrock.chat_call({"messages": ASK}, MODEL, False)
    assert call.url == f"https://bedrock-runtime.us-west-2.amazonaws.com/model/{MODEL}/converse"
    stream = bedrock.chat_call({"messages": ASK}, PROFILE_ARN, True)
    assert stream.url.endswith(
        "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile%2F"
        "us.anthropic.claude-3-5-sonnet-20240620-v1:0/converse-stream"
    )
    for url in (call.url, stream.url):  # aiohttp (yarl) sends the path as signed
        assert yarl.URL(url).raw_path == url.split("amazonaws.com", 1)[1]
    assert bedrock.health_call() is None


def test_signature_is_sigv4_for_bedrock_per_request() -> None:
    bedrock = adapter()
    first = bedrock.chat_call({"messages": ASK}, MODEL, False)
    second = bedrock.chat_call({"messages": ASK, "temperature": 0.5}, MODEL, False)
    auth = first.headers["Authorization"]
    today = datetime.now(UTC).strftime("%Y%m%d")
    assert auth.startswith(
        f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{today}/us-west-2/bedrock/aws4_request"
    )
    assert "SignedHeaders=content-type;host;x-amz-date," in auth
    stamped = datetime.strptime(first.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    assert abs(stamped.replace(tzinfo=UTC).timestamp() - time.time()) < 60
    signature = auth.rsplit("Signature=", 1)[1]
    assert signature == recomputed_signature(first, KEYS["aws_secret_access_key"])
    assert signature != recomputed_signature(first, "another-secret")
    assert second.headers["Authorization"].rsplit("=", 1)[1] != signature  # the body is signed


def test_session_token_is_sent_and_signed() -> None:
    call = adapter(aws_session_token="FQoGZXIvYXdzEXAMPLE").chat_call(
        {"messages": ASK}, MODEL, True
    )
    assert call.headers["X-Amz-Security-Token"] == "FQoGZXIvYXdzEXAMPLE"
    assert "x-amz-security-token" in call.headers["Authorization"]
    signature = call.headers["Authorization"].rsplit("=", 1)[1]
    assert signature == recomputed_signature(
        call, KEYS["aws_secret_access_key"], "FQoGZXIvYXdzEXAMPLE"
    )


def test_api_key_then_environment_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    keyed = BedrockAdapter(ProviderSettings(kind="bedrock", region="eu-west-1", api_key="ABSK-x"))
    call = keyed.chat_call({"messages": ASK}, MODEL, False)
    assert call.headers["authorization"] == "Bearer ABSK-x"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    from_env = BedrockAdapter(ProviderSettings(kind="bedrock", region="eu-west-1"))
    auth = from_env.chat_call({"messages": ASK}, MODEL, False).headers["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDFROMENV/")
    with pytest.raises(ValueError, match="region"):
        BedrockAdapter(ProviderSettings(kind="bedrock", base_url="http://proxy:8080", **KEYS))
    in_host = ProviderSettings(
        kind="bedrock", base_url="https://bedrock-runtime.ap-south-1.amazonaws.com", **KEYS
    )
    assert BedrockAdapter(in_host).region == "ap-south-1"


# --- request translation -------------------------------------------------------------------


def test_request_messages_tools_and_knobs() -> None:
    png = base64.b64encode(b"\x89PNG\r\n").decode()
    sent = request(
        {
            "messages": [
                {"role": "system", "content": "You are a radio DJ."},
                {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Which station is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                    ],
                },
                {"role": "user", "content": "And its top song?"},
                {"role": "assistant", "content": "", "tool_calls": [CALL, {**CALL, "id": "c2"}]},
                {"role": "tool", "tool_call_id": "call_abc123", "content": "Elemental Hotel"},
                {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "x"}]},
                {"role": "user", "content": "Thanks."},
            ],
            "tools": [SONG],
            "tool_choice": "required",
            "max_completion_tokens": 512,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": ["\n\nHuman:", ""],
            "user": "u-1",  # informational only
            "stream_options": {"include_usage": True},
        }
    )
    assert sent == {
        "system": [{"text": "You are a radio DJ."}, {"text": "Be brief."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Which station is this?"},
                    {"image": {"format": "png", "source": {"bytes": png}}},
                    {"text": "And its top song?"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "toolUse": {
                            "toolUseId": "call_abc123",
                            "name": "top_song",
                            "input": {"sign": "WZPZ"},
                        }
                    },
                    {"toolUse": {"toolUseId": "c2", "name": "top_song", "input": {"sign": "WZPZ"}}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": "call_abc123",
                            "content": [{"text": "Elemental Hotel"}],
                        }
                    },
                    {"toolResult": {"toolUseId": "c2", "content": [{"text": "x"}]}},
                    {"text": "Thanks."},
                ],
            },
        ],
        "inferenceConfig": {
            "maxTokens": 512,
            "temperature": 0.2,
            "topP": 0.9,
            "stopSequences": ["\n\nHuman:"],
        },
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "top_song",
                        "description": "The most popular song on a radio station.",
                        "inputSchema": {"json": SONG["function"]["parameters"]},
                    }
                }
            ],
            "toolChoice": {"any": {}},
        },
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        ("auto", None),  # the default; some models reject any toolChoice
        ("required", {"any": {}}),
        ({"type": "function", "function": {"name": "top_song"}}, {"tool": {"name": "top_song"}}),
    ],
)
def test_tool_choice(choice: Any, expected: Json | None) -> None:
    strict = {**SONG, "function": {**SONG["function"], "strict": True}}
    config = request({"messages": ASK, "tools": [strict], "tool_choice": choice})["toolConfig"]
    assert config.get("toolChoice") == expected
    assert config["tools"][0]["toolSpec"]["strict"] is True


def test_tool_choice_none_without_tool_history_omits_tools() -> None:
    assert "toolConfig" not in request({"messages": ASK, "tools": [SONG], "tool_choice": "none"})


def test_json_schema_is_structured_output_and_extras() -> None:
    schema = {"type": "object", "properties": {"song": {"type": "string"}}, "required": ["song"]}
    sent = request(
        {
            "messages": ASK,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": True},
            },
            "service_tier": "flex",
        }
    )
    assert sent["outputConfig"] == {
        "textFormat": {
            "type": "json_schema",
            "structure": {
                "jsonSchema": {"schema": orjson.dumps(schema).decode(), "name": "answer"}
            },
        }
    }
    assert sent["serviceTier"] == {"type": "flex"}
    image = request(
        {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "s3://my-bucket/cats/cat.JPG"}}]}]}
    )["messages"][0]["content"][0]  # fmt: skip
    assert image == {
        "image": {
            "format": "jpeg",
            "source": {"s3Location": {"uri": "s3://my-bucket/cats/cat.JPG"}},
        }
    }


def test_foreign_tool_ids_map_to_the_same_converse_id() -> None:
    odd = {**CALL, "id": "call/with spaces+" + "x" * 70}
    sent = request(
        {
            "messages": [
                *ASK,
                {"role": "assistant", "content": None, "tool_calls": [odd]},
                {"role": "tool", "tool_call_id": odd["id"], "content": "ok"},
            ],
            "tools": [SONG],
        }
    )
    use_id = sent["messages"][1]["content"][0]["toolUse"]["toolUseId"]
    assert re.fullmatch(r"[a-zA-Z0-9_.:-]{1,64}", use_id)
    assert sent["messages"][2]["content"][0]["toolResult"]["toolUseId"] == use_id


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"n": 2}, "one choice"),
        ({"seed": 0}, "seed"),
        ({"logprobs": True}, "logprobs"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"reasoning_effort": "high"}, "reasoning"),
        ({"temperature": 1.5}, "0 to 1"),
        ({"response_format": {"type": "json_object"}}, "json_schema"),
        ({"tools": [SONG], "parallel_tool_calls": False}, "parallel"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "function"),
        ({"modalities": ["text", "audio"]}, "text only"),
        ({"service_tier": "scale"}, "service_tier"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x.org/a.png"}}]}]}, "by URL"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}]}, "bmp"),
        ({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": ""}}]}]}, "input_audio"),
        ({"messages": [*ASK, {"role": "assistant", "tool_calls": [CALL]},
                       {"role": "tool", "tool_call_id": "call_abc123", "content": "x"}]}, "tools"),
        ({"messages": [*ASK, {"role": "assistant", "tool_calls": [CALL]}],
          "tools": [SONG], "tool_choice": "none"}, "tool_choice: none"),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "function"),
    ],
)  # fmt: skip
def test_what_converse_cannot_express_is_refused(extra: Json, needle: str) -> None:
    with pytest.raises(UnsupportedError, match=re.escape(needle)):
        request({"messages": ASK, **extra})


# --- answers -------------------------------------------------------------------------------


def test_text_answer_with_cache_usage_and_no_reasoning() -> None:
    answer = adapter().chat_result(fixture("converse_text.json"), "public")
    assert answer["object"] == "chat.completion"
    assert answer["model"] == "public"
    assert answer["id"].startswith("chatcmpl-")
    assert answer["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert answer["usage"] == {
        "prompt_tokens": 1512,  # inputTokens excludes the cached 1500
        "completion_tokens": 11,
        "total_tokens": 1523,
        "prompt_tokens_details": {"cached_tokens": 1500},
    }


def test_tool_use_answer() -> None:
    answer = adapter().chat_result(fixture("converse_tool.json"), "public")
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I'll look up the most popular song on WZPZ."
    assert choice["message"]["tool_calls"] == [
        {
            "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
            "type": "function",
            "function": {"name": "top_song", "arguments": '{"sign":"WZPZ"}'},
        }
    ]
    assert answer["usage"]["total_tokens"] == 446


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    payload = {**orjson.loads(fixture("converse_text.json")), "stopReason": stop}
    answer = adapter().chat_result(orjson.dumps(payload), "m")
    assert answer["choices"][0]["finish_reason"] == finish


def test_malformed_output_and_non_converse_bodies_are_unreadable() -> None:
    payload = {**orjson.loads(fixture("converse_tool.json")), "stopReason": "malformed_tool_use"}
    with pytest.raises(ValueError, match="malformed_tool_use"):
        adapter().chat_result(orjson.dumps(payload), "m")
    with pytest.raises(ValueError):
        adapter().chat_result(b'{"choices": []}', "m")


# --- streams -------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(1,), (3, 7), (13, 64, 2), (100_000,)])
def test_text_stream_in_any_slices(sizes: tuple[int, ...]) -> None:
    data = encode(orjson.loads(fixture("stream_text.json")))
    decoder = adapter().stream_decoder("public")
    chunks = feed_in_slices(decoder, data, sizes)
    assert decoder.error is None
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert streamed_text(chunks) == "Hello! How can I help you today?"  # no reasoning
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    usages = [c for c in chunks if c.get("usage")]
    assert len(usages) == 1 and usages[0] is chunks[-1] and usages[0]["choices"] == []
    json_answer = adapter().chat_result(fixture("converse_text.json"), "public")
    assert streamed_usage(chunks) == json_answer["usage"]
    assert len({c["id"] for c in chunks}) == 1


def test_tool_stream_starts_calls_and_streams_arguments() -> None:
    decoder = adapter().stream_decoder("public")
    chunks = feed_in_slices(decoder, encode(orjson.loads(fixture("stream_tool.json"))), (5,))
    assert decoder.error is None
    assert streamed_text(chunks) == "Let me check."
    deltas = tool_deltas(chunks)
    assert [(d["index"], d.get("id"), d["function"].get("name")) for d in deltas if "id" in d] == [
        (0, "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "top_song"),
        (1, "tooluse_second", "top_song"),
    ]
    for position, arguments in ((0, '{"sign": "WZPZ"}'), (1, '{"sign": "WKRP"}')):
        joined = "".join(d["function"]["arguments"] for d in deltas if d["index"] == position)
        assert joined == arguments
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens"] == 375


@pytest.mark.parametrize(
    ("name", "status", "retryable"),
    [
        ("throttlingException", 429, True),
        ("serviceUnavailableException", 503, True),
        ("internalServerException", 500, True),
        ("modelStreamErrorException", 424, False),
        ("validationException", 400, False),
    ],
)
def test_exception_event_mid_stream(name: str, status: int, retryable: bool) -> None:
    events = orjson.loads(fixture("stream_text.json"))[:5]
    data = encode(events) + eventstream.exception(name, "Too many tokens, please wait.")
    decoder = adapter().stream_decoder("public")
    chunks = feed_in_slices(decoder, data, (11,))
    assert streamed_text(chunks) == "Hello!"
    assert decoder.error is not None
    assert decoder.error.status == status
    assert decoder.error.retryable is retryable
    assert decoder.error.type == name[0].upper() + name[1:]
    assert decoder.error.message == "Too many tokens, please wait."


def test_truncated_and_corrupt_streams_are_errors() -> None:
    data = encode(orjson.loads(fixture("stream_text.json")))
    cut = adapter().stream_decoder("m")
    cut.feed(data[:-10])
    cut.close()
    assert cut.error is not None and cut.error.status == 502
    early = adapter().stream_decoder("m")  # whole events, but no messageStop
    early.feed(encode(orjson.loads(fixture("stream_text.json"))[:3]))
    early.close()
    assert early.error is not None
    corrupt = bytearray(data)
    corrupt[30] ^= 0xFF
    broken = adapter().stream_decoder("m")
    broken.feed(bytes(corrupt))
    assert broken.error is not None and "broken event stream" in broken.error.message


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "body", "retryable"),
    [
        (429, "ThrottlingException", b'{"message":"Too many requests, please wait."}', True),
        (429, "ModelNotReadyException", b'{"message":"Model is not ready."}', True),
        (503, "ServiceUnavailableException", b'{"Message":"Service unavailable."}', True),
        (400, "ValidationException", b'{"message":"Malformed input request."}', False),
        (403, "AccessDeniedException", b'{"Message":"You don\'t have access."}', False),
        (424, "ModelErrorException", b'{"message":"The model returned an error."}', False),
    ],
)
def test_failure_reads_error_type_header(
    status: int, kind: str, body: bytes, retryable: bool
) -> None:
    headers = {
        "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "x-amzn-RequestId": "2bd0d2d4-7b0a-4a43-9bcb-e8bbbd0a6a4b",
    }
    failure = adapter().failure(status, body, headers)
    assert (failure.status, failure.type, failure.retryable) == (status, kind, retryable)
    assert failure.message == orjson.loads(body).get("message", orjson.loads(body).get("Message"))
    assert failure.retry_after_s is None  # AWS sends none


def test_failure_without_json_or_header() -> None:
    failure = adapter().failure(502, b"<html>Bad Gateway</html>", {})
    assert (failure.status, failure.message, failure.type) == (502, "<html>Bad Gateway</html>", "")
    typed = adapter().failure(400, b'{"__type":"com.amazon#ThrottlingException","message":"x"}', {})
    assert (typed.status, typed.type, typed.retryable) == (429, "ThrottlingException", True)


# --- embeddings ----------------------------------------------------------------------------


def test_titan_embeddings_call_and_result() -> None:
    bedrock = adapter()
    model = "amazon.titan-embed-text-v2:0"
    call = bedrock.embeddings_call({"input": ["hello"], "dimensions": 256}, model)
    assert call.url.endswith("/model/amazon.titan-embed-text-v2:0/invoke")
    assert orjson.loads(call.body) == {"inputText": "hello", "dimensions": 256}
    assert call.headers["Authorization"].startswith("AWS4-HMAC-SHA256 ")
    payload = orjson.dumps(
        {"embedding": [0.25, -0.5], "inputTextTokenCount": 2,
         "embeddingsByType": {"float": [0.25, -0.5]}}
    )  # fmt: skip
    answer = bedrock.embeddings_result(payload, "emb", {"input": "hello"})
    assert answer == {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
        "model": "emb",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    packed = bedrock.embeddings_result(payload, "emb", {"encoding_format": "base64"})
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.25, -0.5)


@pytest.mark.parametrize(
    ("body", "model"),
    [
        ({"input": ["a", "b"]}, "amazon.titan-embed-text-v2:0"),
        ({"input": [[1, 2]]}, "amazon.titan-embed-text-v2:0"),
        ({"input": "a", "dimensions": 256}, "amazon.titan-embed-text-v1"),
        ({"input": "a", "dimensions": 300}, "amazon.titan-embed-text-v2:0"),
        ({"input": "a", "encoding_format": "int8"}, "amazon.titan-embed-text-v2:0"),
        ({"input": "a"}, "cohere.embed-english-v3"),
    ],
)
def test_embeddings_refused(body: Json, model: str) -> None:
    with pytest.raises(UnsupportedError):
        adapter().embeddings_call(body, model)


# --- against the fake ----------------------------------------------------------------------


@pytest.fixture
def bedrock(fake: BackgroundFakeUpstream, wire: Any) -> Any:
    return wire(
        kind="bedrock",
        base_url=fake.root_url,
        region="us-east-1",
        aws_access_key_id="AKIDFAKE",
        aws_secret_access_key="fake-secret",
    )


BODY: Json = {"model": "claude-on-bedrock", "messages": ASK}


async def test_fake_chat(bedrock: Any, fake: BackgroundFakeUpstream) -> None:
    answer = await bedrock.chat({**BODY, "max_tokens": 50}, MODEL)
    assert answer["object"] == "chat.completion"
    assert answer["model"] == "claude-on-bedrock"
    assert answer["choices"][0]["message"]["content"]
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    seen = last_request(fake, "bedrock")
    assert seen["path"] == f"/model/{MODEL}/converse"
    assert seen["body"]["inferenceConfig"] == {"maxTokens": 50}


async def test_fake_stream_matches_json_answer(bedrock: Any) -> None:
    whole = await bedrock.chat(BODY, MODEL)
    chunks = await bedrock.stream(BODY, MODEL)
    assert streamed_text(chunks) == whole["choices"][0]["message"]["content"]
    assert streamed_usage(chunks) == whole["usage"]
    assert chunks[-1]["choices"] == [] and sum(1 for c in chunks if c.get("usage")) == 1


async def test_fake_inference_profile_arn_is_signed_as_sent(bedrock: Any) -> None:
    chunks = await bedrock.stream(BODY, PROFILE_ARN)
    assert streamed_text(chunks)


async def test_fake_tool_round_trip(bedrock: Any) -> None:
    asked = {**BODY, "tools": [SONG], "tool_choice": "required"}
    first = await bedrock.chat(asked, MODEL)
    choice = first["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "top_song"
    assert isinstance(orjson.loads(call["function"]["arguments"]), dict)
    streamed = tool_deltas(await bedrock.stream(asked, MODEL))
    assert "".join(d["function"]["arguments"] for d in streamed) == call["function"]["arguments"]
    history = [
        *ASK,
        {"role": "assistant", "content": choice["message"]["content"], "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "Elemental Hotel by 8 Storey Hike"},
    ]
    second = await bedrock.chat({**BODY, "messages": history, "tools": [SONG]}, MODEL)
    assert second["choices"][0]["finish_reason"] == "stop"
    assert second["choices"][0]["message"]["content"]


async def test_fake_bad_signature_is_a_non_retryable_403(
    fake: BackgroundFakeUpstream, wire: Any
) -> None:
    wrong = wire(
        kind="bedrock",
        base_url=fake.root_url,
        region="us-east-1",
        aws_access_key_id="AKIDFAKE",
        aws_secret_access_key="not-the-secret",
    )
    with pytest.raises(ProviderFailure) as caught:
        await wrong.chat(BODY, MODEL)
    failure = caught.value.failure
    assert (failure.status, failure.type, failure.retryable) == (
        403,
        "InvalidSignatureException",
        False,
    )
    assert "signature" in failure.message.lower()


async def test_fake_throttle_is_a_retryable_429(bedrock: Any, fake: BackgroundFakeUpstream) -> None:
    await script_fault(fake, model=MODEL, provider="bedrock", status=429, count=2)
    with pytest.raises(ProviderFailure) as caught:
        await bedrock.chat(BODY, MODEL)
    failure = caught.value.failure
    assert (failure.status, failure.type, failure.retryable) == (429, "ThrottlingException", True)
    with pytest.raises(ProviderFailure) as streamed:
        await bedrock.stream(BODY, MODEL)
    assert streamed.value.failure.type == "ThrottlingException"
    assert (await bedrock.chat(BODY, MODEL))["choices"]  # the queued faults are spent
