"""Bedrock Converse over real HTTP through botocore itself: SigV4 signing, JSON, and the
binary event stream decoded by botocore's parser (and by ``EventStreamBuffer`` directly)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import botocore.session
import httpx
import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError

from infra.fake_upstream.providers import eventstream
from infra.fake_upstream.providers.reply import prompt_tokens
from infra.fake_upstream.server import BackgroundFakeUpstream
from schemas.tokens import count_text

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
ASK = [{"role": "user", "content": [{"text": "Describe a lighthouse."}]}]
TOOLS = {
    "tools": [
        {
            "toolSpec": {
                "name": "beam",
                "description": "Beam range",
                "inputSchema": {
                    "json": {
                        "type": "object",
                        "properties": {"miles": {"type": "integer", "minimum": 1}},
                        "required": ["miles"],
                    }
                },
            }
        }
    ]
}


def _client(
    fake: BackgroundFakeUpstream, secret: str = "fake-secret", key: str = "AKIDFAKE"
) -> Any:
    return botocore.session.Session().create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=fake.root_url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture
def bedrock(fake: BackgroundFakeUpstream) -> Iterator[Any]:
    httpx.post(f"{fake.root_url}/_fake/reset")
    client = _client(fake)
    yield client
    client.close()


def test_converse_with_exact_usage(bedrock: Any, fake: BackgroundFakeUpstream) -> None:
    done = bedrock.converse(modelId=MODEL, messages=ASK, system=[{"text": "Be vivid."}])
    text = done["output"]["message"]["content"][0]["text"]
    assert done["output"]["message"]["role"] == "assistant"
    assert done["stopReason"] == "end_turn"
    usage = done["usage"]
    assert usage["outputTokens"] == count_text(text, MODEL) == 24
    assert usage["inputTokens"] == prompt_tokens(MODEL, ["Be vivid.", "Describe a lighthouse."])
    assert usage["totalTokens"] == usage["inputTokens"] + 24
    assert done["metrics"]["latencyMs"] >= 0
    assert done["ResponseMetadata"]["RequestId"]
    short = bedrock.converse(modelId=MODEL, messages=ASK, inferenceConfig={"maxTokens": 3})
    assert short["stopReason"] == "max_tokens"
    stats = httpx.get(f"{fake.root_url}/_fake/stats").json()
    assert stats["models"][MODEL] == {
        "requests": 2,
        "prompt_tokens": usage["inputTokens"] + prompt_tokens(MODEL, ["Describe a lighthouse."]),
        "completion_tokens": 27,
    }
    last = httpx.get(f"{fake.root_url}/_fake/last?provider=bedrock").json()
    assert last["path"] == f"/model/{MODEL}/converse"
    assert "authorization" in last["auth_headers"]


def test_stream_decoded_by_botocore_matches_converse(bedrock: Any) -> None:
    whole = bedrock.converse(modelId=MODEL, messages=ASK)
    events = list(bedrock.converse_stream(modelId=MODEL, messages=ASK)["stream"])
    names = [next(iter(e)) for e in events]
    assert names[0] == "messageStart"
    assert names[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    text = "".join(
        e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e
    )
    assert text == whole["output"]["message"]["content"][0]["text"]
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    assert events[-1]["metadata"]["usage"] == whole["usage"]


def test_tool_use_json_and_streamed(bedrock: Any) -> None:
    done = bedrock.converse(modelId=MODEL, messages=ASK, toolConfig=TOOLS)
    assert done["stopReason"] == "tool_use"
    use = done["output"]["message"]["content"][0]["toolUse"]
    assert use["name"] == "beam"
    assert use["input"]["miles"] >= 1
    events = list(bedrock.converse_stream(modelId=MODEL, messages=ASK, toolConfig=TOOLS)["stream"])
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    assert start["start"]["toolUse"] == {"toolUseId": use["toolUseId"], "name": "beam"}
    fragments = [
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in events
        if "contentBlockDelta" in e
    ]
    assert "".join(fragments) == f'{{"miles":{use["input"]["miles"]}}}'
    history = [
        *ASK,
        {"role": "assistant", "content": [{"toolUse": use}]},
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": {"ok": 1}}]}}
            ],
        },
    ]
    closing = bedrock.converse(modelId=MODEL, messages=history, toolConfig=TOOLS)
    assert closing["stopReason"] == "end_turn"


def test_raw_stream_frames_decode_with_event_stream_buffer(fake: BackgroundFakeUpstream) -> None:
    url = f"{fake.root_url}/model/{quote(MODEL, safe='')}/converse-stream"
    request = AWSRequest(
        "POST",
        url,
        {"content-type": "application/json"},
        orjson.dumps({"messages": ASK}),
    )
    SigV4Auth(Credentials("AKIDFAKE", "fake-secret"), "bedrock", "us-east-1").add_auth(request)
    answer = httpx.post(url, content=request.body, headers=dict(request.headers.items()))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/vnd.amazon.eventstream"
    buffer = EventStreamBuffer()
    buffer.add_data(answer.content)
    messages = list(buffer)
    assert messages[0].headers == {
        ":event-type": "messageStart",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert messages[-1].headers[":event-type"] == "metadata"
    single = EventStreamBuffer()
    single.add_data(eventstream.exception("throttlingException", "slow down"))
    (error,) = list(single)
    assert error.headers[":message-type"] == "exception"
    assert error.payload == b'{"message":"slow down"}'


def test_bad_signatures_are_403s(fake: BackgroundFakeUpstream) -> None:
    for client, kind in (
        (_client(fake, secret="wrong"), "InvalidSignatureException"),
        (_client(fake, key="AKIDOTHER"), "UnrecognizedClientException"),
    ):
        with pytest.raises(ClientError) as caught:
            client.converse(modelId=MODEL, messages=ASK)
        assert caught.value.response["Error"]["Code"] == kind
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unsigned = httpx.post(f"{fake.root_url}/model/{MODEL}/converse", json={"messages": ASK})
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-errortype"].startswith("MissingAuthenticationTokenException")
    assert unsigned.json() == {"message": "Missing Authentication Token"}


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"modelId": "anthropc.claude"}, "model identifier is invalid"),
        ({"messages": [{"role": "assistant", "content": [{"text": "x"}]}]}, "start with a user"),
        ({"messages": [*ASK, *ASK]}, "alternate between user and assistant"),
        ({"inferenceConfig": {"temperature": 2}}, "temperature"),
    ],
)
def test_validation_exceptions(bedrock: Any, kwargs: dict[str, Any], text: str) -> None:
    with pytest.raises(ClientError) as caught:
        bedrock.converse(**{"modelId": MODEL, "messages": ASK, **kwargs})
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert text in caught.value.response["Error"]["Message"]


def test_scripted_throttle_and_broken_stream(bedrock: Any, fake: BackgroundFakeUpstream) -> None:
    httpx.post(f"{fake.root_url}/_fake/faults", json={"provider": "bedrock", "status": 429})
    with pytest.raises(bedrock.exceptions.ThrottlingException) as caught:
        bedrock.converse(modelId=MODEL, messages=ASK)
    assert "retry-after" not in caught.value.response["ResponseMetadata"]["HTTPHeaders"]
    httpx.post(f"{fake.root_url}/_fake/faults", json={"provider": "bedrock", "status": 503})
    with pytest.raises(bedrock.exceptions.ServiceUnavailableException):
        bedrock.converse(modelId=MODEL, messages=ASK)
    httpx.post(f"{fake.root_url}/_fake/faults", json={"model": MODEL, "after_chunks": 2})
    stream = bedrock.converse_stream(modelId=MODEL, messages=ASK)["stream"]
    with pytest.raises(Exception):  # noqa: B017 (botocore surfaces the cut as several types)
        list(stream)
