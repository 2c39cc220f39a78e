"""Every provider kind behind one Tollgate, each reached in its own wire format on the fake
upstream, through the unchanged ``openai`` SDK: JSON and streamed answers agree, and the
usage Tollgate reports equals what the fake says it served for that provider."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from infra.fake_upstream.server import BackgroundFakeUpstream
from infra.kafka.broker import LocalKafka
from tests.harness import TEST_KEY, write_config
from tests.ingress.live_gateway import LiveGateway

pytestmark = pytest.mark.integration

# public model → (provider kind, provider settings beyond kind/base_url, upstream model)
CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    "openai-4o": ("openai", {"api_key": "k"}, "gpt-4o"),
    "azure-4o": ("azure", {"api_key": "k", "api_version": "2024-10-21"}, "prod-4o"),
    "claude": ("anthropic", {"api_key": "k"}, "claude-sonnet-4-5"),
    "gemini": ("gemini", {"api_key": "k"}, "gemini-2.5-flash"),
    "bedrock-claude": (
        "bedrock",
        {
            "region": "us-east-1",
            "aws_access_key_id": "AKIDFAKE",
            "aws_secret_access_key": "fake-secret",
        },
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
    ),
    "mistral": ("mistral", {"api_key": "k"}, "mistral-small-latest"),
    "cohere": ("cohere", {"api_key": "k"}, "command-r-plus"),
}
SUFFIX = {"openai": "/v1", "mistral": "/mistral/v1"}


@pytest.fixture(scope="module")
def fake() -> Iterator[BackgroundFakeUpstream]:
    with BackgroundFakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def client(
    kafka: LocalKafka, fake: BackgroundFakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[openai.OpenAI]:
    providers = {
        kind: {"kind": kind, "base_url": fake.root_url + SUFFIX.get(kind, ""), **extra}
        for kind, extra, _ in CASES.values()
    }
    deployments = [
        {"model": model, "provider": kind, "upstream_model": upstream}
        for model, (kind, _, upstream) in CASES.items()
    ]
    config, path = write_config(
        tmp_path_factory.mktemp("providers"),
        kafka.bootstrap_servers,
        providers=providers,
        deployments=deployments,
    )
    with (
        LiveGateway(config, path) as gateway,
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=TEST_KEY, max_retries=0) as sdk,
    ):
        yield sdk


def served(fake: BackgroundFakeUpstream, kind: str) -> dict[str, int]:
    stats = httpx.get(f"{fake.root_url}/_fake/stats").json()
    return dict(
        stats["providers"].get(kind, {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0})
    )


MESSAGES: list[Any] = [
    {"role": "system", "content": "Answer in one sentence."},
    {"role": "user", "content": "Why do gateways record usage?"},
]


@pytest.mark.parametrize("model", list(CASES))
def test_json_and_stream_agree_and_usage_is_the_providers(
    client: openai.OpenAI, fake: BackgroundFakeUpstream, model: str
) -> None:
    kind = CASES[model][0]
    before = served(fake, kind)
    whole = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=40)
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=MESSAGES,
            max_tokens=40,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    after = served(fake, kind)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert whole.choices[0].message.content and text == whole.choices[0].message.content
    assert whole.model == model or whole.model.startswith(CASES[model][2][:6])
    usage = chunks[-1].usage
    assert usage is not None and whole.usage is not None
    assert usage.prompt_tokens == whole.usage.prompt_tokens
    assert usage.completion_tokens == whole.usage.completion_tokens
    assert after["requests"] - before["requests"] == 2
    assert after["prompt_tokens"] - before["prompt_tokens"] == 2 * whole.usage.prompt_tokens
    assert (
        after["completion_tokens"] - before["completion_tokens"]
        == 2 * whole.usage.completion_tokens
    )
