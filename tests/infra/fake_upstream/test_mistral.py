"""Mistral over real HTTP: OpenAI's shapes at ``/mistral/v1`` with Mistral's strictness."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.infra.fake_upstream.conftest import KEY, sse_events

MODEL = "mistral-small-latest"
ASK = [{"role": "user", "content": "Name a mountain."}]
AUTH = {"authorization": f"Bearer {KEY}"}
TOOL = {
    "type": "function",
    "function": {
        "name": "find_peak",
        "parameters": {"type": "object", "properties": {"range": {"type": "string"}}},
    },
}


async def _chat(http: httpx.AsyncClient, **extra: Any) -> httpx.Response:
    body = {"model": MODEL, "messages": ASK, **extra}
    return await http.post("/mistral/v1/chat/completions", json=body, headers=AUTH)


async def test_chat_is_lean_and_seeded_by_random_seed(http: httpx.AsyncClient) -> None:
    done = (await _chat(http)).json()
    assert set(done) == {"id", "object", "created", "model", "choices", "usage"}
    assert set(done["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert done["choices"][0]["message"] == {
        "role": "assistant",
        "content": done["choices"][0]["message"]["content"],
    }
    seeded = (await _chat(http, random_seed=5)).json()
    assert seeded["choices"][0]["message"]["content"] != done["choices"][0]["message"]["content"]


async def test_stream_ends_with_usage_always(http: httpx.AsyncClient) -> None:
    answer = await _chat(http, stream=True, max_tokens=3)
    events = [data for _, data in sse_events(answer.content)]
    assert events[-1] == "[DONE]"
    last = events[-2]
    assert last["choices"][0]["finish_reason"] == "length"
    assert last["usage"]["completion_tokens"] == 3
    assert all("usage" not in e for e in events[:-2])
    assert "logprobs" not in events[1]["choices"][0]


async def test_tool_calls_use_any_and_nine_character_ids(http: httpx.AsyncClient) -> None:
    done = (await _chat(http, tools=[TOOL], tool_choice="any")).json()
    call = done["choices"][0]["message"]["tool_calls"][0]
    assert len(call["id"]) == 9
    assert call["id"].isalnum()
    assert done["choices"][0]["finish_reason"] == "tool_calls"
    streamed = await _chat(http, tools=[TOOL], stream=True)
    events = [data for _, data in sse_events(streamed.content)]
    whole = events[0]["choices"][0]["delta"]["tool_calls"][0]
    assert whole["function"]["arguments"] == call["function"]["arguments"]
    history: list[dict[str, Any]] = [
        *ASK,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "name": "find_peak", "content": "Alps"},
    ]
    closing = (await _chat(http, messages=history, tools=[TOOL])).json()
    assert closing["choices"][0]["finish_reason"] == "stop"
    wrong = [*history[:2], {**history[2], "tool_call_id": "call_abc"}]
    rejected = await _chat(http, messages=wrong)
    assert rejected.status_code == 422
    assert rejected.json()["detail"][0]["loc"] == ["body", "messages", 2, "tool_call_id"]


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"seed": 1}, ["body", "seed"]),
        ({"stream_options": {"include_usage": True}}, ["body", "stream_options"]),
        ({"logprobs": True}, ["body", "logprobs"]),
        ({"messages": [{"role": "user", "content": "x", "name": "ada"}]},
         ["body", "messages", 0, "user", "name"]),
    ],
)  # fmt: skip
async def test_extra_fields_are_422_extra_forbidden(
    http: httpx.AsyncClient, extra: dict[str, Any], loc: list[Any]
) -> None:
    answer = await _chat(http, **extra)
    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["type"] == "extra_forbidden"
    assert problem["loc"] == loc
    assert problem["msg"] == "Extra inputs are not permitted"


async def test_embeddings_models_auth_and_faults(http: httpx.AsyncClient) -> None:
    embedded = await http.post(
        "/mistral/v1/embeddings", json={"model": "mistral-embed", "input": ["x"]}, headers=AUTH
    )
    assert embedded.json()["usage"]["prompt_tokens"] == 1
    listed = await http.get("/mistral/v1/models", headers=AUTH)
    assert "mistral-embed" in [m["id"] for m in listed.json()["data"]]
    unauthorized = await http.post("/mistral/v1/chat/completions", json={"model": MODEL})
    assert unauthorized.status_code == 401
    assert unauthorized.json()["message"] == "Unauthorized"
    await http.post("/_fake/faults", json={"provider": "mistral", "status": 429})
    limited = await _chat(http)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["message"] == "Requests rate limit exceeded"
    stats = (await http.get("/_fake/stats")).json()
    assert stats["providers"]["mistral"]["requests"] == 1
