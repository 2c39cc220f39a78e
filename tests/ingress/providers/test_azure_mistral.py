"""Azure OpenAI (deployment in the path, api-key header, api-version) and Mistral (renamed
and missing parameters) against the fake's own routes for them."""

from __future__ import annotations

from typing import Any

import pytest

from infra.fake_upstream.server import BackgroundFakeUpstream
from ingress.providers.base import UnsupportedError
from tests.ingress.providers.conftest import (
    last_request,
    streamed_text,
    streamed_usage,
)

MESSAGES = [{"role": "user", "content": "Say hello."}]


async def test_azure_chat_stream_and_embeddings(fake: BackgroundFakeUpstream, wire: Any) -> None:
    azure = wire(
        kind="azure", base_url=fake.root_url, api_key="sk-upstream", api_version="2024-10-21"
    )
    body = {"model": "gpt-4o", "messages": MESSAGES}
    whole = await azure.chat(body, upstream_model="prod-4o")
    assert whole["choices"][0]["message"]["content"]
    sent = last_request(fake, "azure")
    assert sent["path"] == "/openai/deployments/prod-4o/chat/completions"
    assert sent["query"]["api-version"] == "2024-10-21" and "api-key" in sent["auth_headers"]
    chunks = await azure.stream(body, upstream_model="prod-4o")
    assert streamed_text(chunks) and streamed_usage(chunks)
    vectors = await azure.embeddings({"model": "e", "input": ["a"]}, upstream_model="embed-3")
    assert vectors["data"][0]["embedding"]


async def test_mistral_renames_and_refuses(fake: BackgroundFakeUpstream, wire: Any) -> None:
    mistral = wire(kind="mistral", base_url=f"{fake.root_url}/mistral/v1", api_key="sk-upstream")
    body = {
        "model": "mistral-small-latest",
        "messages": MESSAGES,
        "seed": 5,
        "tool_choice": "required",
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
    }
    answer = await mistral.chat(body)
    assert answer["choices"][0]["finish_reason"] == "tool_calls"
    sent = last_request(fake, "mistral")["body"]
    assert sent["random_seed"] == 5 and "seed" not in sent and sent["tool_choice"] == "any"
    chunks = await mistral.stream({"model": "mistral-small-latest", "messages": MESSAGES})
    assert streamed_text(chunks) and streamed_usage(chunks)  # usage without stream_options
    with pytest.raises(UnsupportedError, match="logprobs"):
        await mistral.chat(
            {"model": "mistral-small-latest", "messages": MESSAGES, "logprobs": True}
        )


async def test_mistral_maps_foreign_tool_ids(fake: BackgroundFakeUpstream, wire: Any) -> None:
    mistral = wire(kind="mistral", base_url=f"{fake.root_url}/mistral/v1", api_key="sk-upstream")
    call = {
        "id": "call_from_openai_123",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"},
    }
    body = {
        "model": "mistral-small-latest",
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "messages": [
            *MESSAGES,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_from_openai_123", "content": "done"},
        ],
    }
    answer = await mistral.chat(body)  # the fake, like Mistral, rejects other id shapes
    assert answer["choices"][0]["message"]["content"]
    sent = last_request(fake, "mistral")["body"]["messages"]
    assert sent[-1]["tool_call_id"] == sent[-2]["tool_calls"][0]["id"]
    assert len(sent[-1]["tool_call_id"]) == 9
