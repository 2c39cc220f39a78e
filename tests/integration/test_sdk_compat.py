"""The official SDKs, unchanged, against Tollgate in front of the fake upstream.

``openai``: chat, streaming (with exact usage), tools, embeddings, models, typed errors.
``anthropic``: messages and streaming through the ``/v1/messages`` front door. Events go to
the real session broker; the streamed call's recorded usage must equal what the fake served.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import orjson
import pytest

from infra.fake_upstream.server import BackgroundFakeUpstream
from infra.fake_upstream.settings import FakeUpstreamSettings
from infra.kafka.broker import LocalKafka
from schemas.topics import REQUESTS
from tests.harness import TEST_KEY, write_config
from tests.ingress.live_gateway import LiveGateway
from tests.kafka_io import collect

pytestmark = pytest.mark.integration
UPSTREAM_KEY = "sk-upstream-secret"


@pytest.fixture(scope="module")
def stack(kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    with BackgroundFakeUpstream(FakeUpstreamSettings(api_key=UPSTREAM_KEY)) as fake:
        home = tmp_path_factory.mktemp("sdk")
        config, path = write_config(
            home,
            kafka.bootstrap_servers,
            providers={
                "fake-openai": {
                    "kind": "openai",
                    "base_url": fake.base_url,
                    "api_key": UPSTREAM_KEY,
                },
                "fake-anthropic": {
                    "kind": "anthropic",
                    "base_url": fake.root_url,
                    "api_key": UPSTREAM_KEY,
                },
            },
            deployments=[
                {"model": "gpt-4o-mini", "provider": "fake-openai"},
                {"model": "gpt-4o", "provider": "fake-openai"},
                {"model": "text-embedding-3-small", "provider": "fake-openai"},
                {
                    "model": "claude",
                    "provider": "fake-anthropic",
                    "upstream_model": "claude-sonnet-4-5",
                },
            ],
            routing={"aliases": {"fast": "gpt-4o-mini"}},
        )
        with LiveGateway(config, path) as gateway:
            yield gateway


@pytest.fixture
def client(stack: LiveGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{stack.url}/v1", api_key=TEST_KEY, max_retries=0, timeout=30
    ) as c:
        yield c


@pytest.fixture
def claude(stack: LiveGateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=stack.url, api_key=TEST_KEY, max_retries=0, timeout=30) as c:
        yield c


MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is a gateway?"},
]


def test_chat(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    answer = raw.parse()
    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.total_tokens > 0
    assert raw.headers["x-request-id"]
    assert raw.headers["x-tollgate-deployment"] == "fake-openai/gpt-4o-mini"


def test_alias_routes_to_its_model(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="fast", messages=MESSAGES)
    assert answer.model.startswith("gpt-4o-mini")


async def test_stream_text_and_usage_match_and_reach_kafka(
    client: openai.OpenAI, kafka: LocalKafka
) -> None:
    whole = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, seed=3)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            seed=3,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-request-id": "sdk-stream-1"},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    usage = chunks[-1].usage
    assert usage is not None and usage.model_dump() == whole.usage.model_dump()  # type: ignore[union-attr]

    records = await collect(
        kafka.bootstrap_servers,
        REQUESTS.name,
        lambda r: b"sdk-stream-1" in r.value and b"response.completed" in r.value,
        expected=1,
        linger=0.2,
    )
    event = orjson.loads(records[0].value)
    assert event["stream"] is True and event["ttft_ms"] > 0
    assert event["usage"]["completion_tokens"] == usage.completion_tokens
    assert event["outputs"] == [text]
    assert event["attempts"][0]["status"] == 200


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert chunks and all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_embeddings(client: openai.OpenAI) -> None:
    answer = client.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    assert [d.index for d in answer.data] == [0, 1]
    assert len(answer.data[0].embedding) > 0


def test_models_lists_configured_names_and_aliases(client: openai.OpenAI) -> None:
    names = {m.id for m in client.models.list()}
    assert names == {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "fast", "claude"}
    assert client.models.retrieve("fast").id == "fast"


def test_typed_errors(stack: LiveGateway, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=7)
    assert bad.value.param == "temperature"
    wrong = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="gpt-4o", messages=MESSAGES)


def test_anthropic_messages(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="gpt-4o-mini",
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": "What is a gateway?"}],
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_anthropic_stream_matches_message(claude: anthropic.Anthropic) -> None:
    kwargs: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Stream please."}],
    }
    whole = claude.messages.create(**kwargs)
    with claude.messages.stream(**kwargs) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.stop_reason == whole.stop_reason


def test_anthropic_errors_are_in_anthropic_shape(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(
            model="gpt-4o", max_tokens=0, messages=[{"role": "user", "content": "x"}]
        )
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(
            model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}


@pytest.mark.parametrize("model", ["gpt-4o", "claude"])
def test_tools_round_trip_on_openai_and_anthropic_upstreams(
    client: openai.OpenAI, model: str
) -> None:
    first = client.chat.completions.create(
        model=model, messages=MESSAGES, tools=[WEATHER], tool_choice="required"
    )
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = first.choices[0].message.tool_calls or []
    arguments = orjson.loads(call.function.arguments)  # type: ignore[union-attr]
    assert isinstance(arguments["city"], str) and isinstance(arguments["days"], int)
    streamed = list(
        client.chat.completions.create(
            model=model, messages=MESSAGES, tools=[WEATHER], tool_choice="required", stream=True
        )
    )
    fragments = [
        d.function.arguments or ""
        for c in streamed
        if c.choices
        for d in c.choices[0].delta.tool_calls or []
        if d.function
    ]
    assert set(orjson.loads("".join(fragments))) >= {"city", "days"}
    final = client.chat.completions.create(
        model=model,
        tools=[WEATHER],
        messages=[
            *MESSAGES,
            {"role": "assistant", "tool_calls": [call.model_dump()]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
        ],
    )
    assert final.choices[0].message.content


def test_vision_json_schema_n_and_logprobs(client: openai.OpenAI) -> None:
    pixel = (
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
        "DwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    seen = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": pixel}},
                ],
            }
        ],
    )
    assert seen.usage is not None and seen.usage.prompt_tokens > 85  # the image is counted
    schema: dict[str, object] = {
        "type": "object",
        "properties": {"score": {"type": "number"}},
        "required": ["score"],
    }
    shaped = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
    )
    assert isinstance(orjson.loads(shaped.choices[0].message.content or "")["score"], int | float)
    several = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        n=2,
        stop=["\n\n"],
        seed=1,
        logprobs=True,
        top_logprobs=2,
    )
    assert [c.index for c in several.choices] == [0, 1]
    assert several.choices[0].logprobs is not None and several.choices[0].logprobs.content


def test_anthropic_sdk_to_an_anthropic_upstream_with_tools(claude: anthropic.Anthropic) -> None:
    tool: Any = {
        "name": "get_weather",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
    message = claude.messages.create(
        model="claude",
        max_tokens=100,
        tools=[tool],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    assert message.stop_reason == "tool_use"
    use = next(b for b in message.content if b.type == "tool_use")
    assert isinstance(use.input["city"], str)  # type: ignore[union-attr,index]
    with claude.messages.stream(
        model="claude", max_tokens=60, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.usage.output_tokens > 0
