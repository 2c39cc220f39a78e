"""Azure OpenAI over real HTTP: the official SDK's ``AsyncAzureOpenAI`` and raw httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from infra.fake_upstream.server import BackgroundFakeUpstream
from schemas.tokens import count_chat_prompt
from tests.infra.fake_upstream.conftest import KEY, sse_events

DEPLOYMENT = "prod-gpt4o"
VERSION = "2024-10-21"
ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Name a river."}]
PATH = f"/openai/deployments/{DEPLOYMENT}/chat/completions"


@pytest.fixture
async def client(fake: BackgroundFakeUpstream) -> AsyncIterator[openai.AsyncAzureOpenAI]:
    sdk = openai.AsyncAzureOpenAI(
        azure_endpoint=fake.root_url, api_key=KEY, api_version=VERSION, max_retries=0
    )
    yield sdk
    await sdk.close()


async def test_chat_names_the_deployment_and_carries_filters(
    client: openai.AsyncAzureOpenAI, http: httpx.AsyncClient
) -> None:
    raw = await client.chat.completions.with_raw_response.create(model=DEPLOYMENT, messages=ASK)
    done = raw.parse()
    assert done.model == DEPLOYMENT
    assert done.usage is not None
    assert done.usage.prompt_tokens == count_chat_prompt(ASK, DEPLOYMENT)
    assert raw.headers["apim-request-id"]
    body = raw.http_response.json()
    assert body["prompt_filter_results"][0]["prompt_index"] == 0
    assert body["choices"][0]["content_filter_results"]["hate"] == {
        "filtered": False,
        "severity": "safe",
    }
    last = (await http.get("/_fake/last?provider=azure")).json()
    assert last["query"] == {"api-version": VERSION}
    assert last["auth_headers"] == ["api-key"]
    stats = (await http.get("/_fake/stats")).json()
    assert stats["models"][DEPLOYMENT]["completion_tokens"] == done.usage.completion_tokens
    assert stats["providers"]["azure"]["requests"] == 1


async def test_stream_opens_with_prompt_filters(
    client: openai.AsyncAzureOpenAI, http: httpx.AsyncClient
) -> None:
    stream = await client.chat.completions.create(
        model=DEPLOYMENT, messages=ASK, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices == []
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text) > 10
    assert chunks[-1].usage is not None
    answer = await http.post(
        f"{PATH}?api-version={VERSION}",
        json={"messages": ASK, "stream": True, "max_tokens": 2},
        headers={"api-key": KEY},
    )
    events = [data for _, data in sse_events(answer.content)]
    assert events[0]["prompt_filter_results"][0]["content_filter_results"]["violence"]
    assert events[0]["id"] == ""
    assert events[2]["choices"][0]["content_filter_results"]["sexual"]["filtered"] is False
    assert events[-1] == "[DONE]"


async def test_embeddings_by_deployment(client: openai.AsyncAzureOpenAI) -> None:
    done = await client.embeddings.create(model="embed-small", input=["a", "b"])
    assert done.model == "embed-small"
    assert len(done.data) == 2


async def test_azure_errors(http: httpx.AsyncClient) -> None:
    body = {"messages": ASK}
    no_version = await http.post(PATH, json=body, headers={"api-key": KEY})
    assert no_version.status_code == 404
    assert no_version.json() == {"error": {"code": "404", "message": "Resource not found"}}
    no_key = await http.post(f"{PATH}?api-version={VERSION}", json=body)
    assert no_key.status_code == 401
    assert no_key.json()["error"]["code"] == "401"
    bearer = await http.post(
        f"{PATH}?api-version={VERSION}", json=body, headers={"authorization": f"Bearer {KEY}"}
    )
    assert bearer.status_code == 200
    invalid = await http.post(
        f"{PATH}?api-version={VERSION}", json={"messages": []}, headers={"api-key": KEY}
    )
    assert invalid.status_code == 400
    assert invalid.json()["error"]["param"] == "messages"
    await http.post("/_fake/faults", json={"model": DEPLOYMENT, "status": 429, "retry_after": 4})
    limited = await http.post(f"{PATH}?api-version={VERSION}", json=body, headers={"api-key": KEY})
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "4"
    assert limited.json()["error"]["code"] == "429"
    assert "Please retry after 4 seconds" in limited.json()["error"]["message"]
