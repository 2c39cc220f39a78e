"""Cohere v2 over real HTTP: chat JSON and SSE (parsed by hand), tools, embed, errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from infra.fake_upstream.providers.reply import prompt_tokens
from schemas.tokens import count_text
from tests.infra.fake_upstream.conftest import KEY, sse_events

MODEL = "command-r-plus-08-2024"
AUTH = {"authorization": f"Bearer {KEY}"}
ASK = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Name a bird."}]
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_bird",
        "description": "Find a bird",
        "parameters": {"type": "object", "properties": {"region": {"type": "string"}}},
    },
}


async def _chat(http: httpx.AsyncClient, **extra: Any) -> httpx.Response:
    return await http.post(
        "/v2/chat", json={"model": MODEL, "messages": ASK, **extra}, headers=AUTH
    )


async def test_chat_with_exact_usage(http: httpx.AsyncClient) -> None:
    done = (await _chat(http)).json()
    assert set(done) == {"id", "message", "finish_reason", "usage"}
    assert done["finish_reason"] == "COMPLETE"
    (content,) = done["message"]["content"]
    assert content["type"] == "text"
    assert done["usage"]["billed_units"] == {
        "input_tokens": prompt_tokens(MODEL, ["Be kind.", "Name a bird."]),
        "output_tokens": count_text(content["text"], MODEL),
    }
    assert done["usage"]["tokens"] == done["usage"]["billed_units"]
    short = (await _chat(http, max_tokens=2)).json()
    assert short["finish_reason"] == "MAX_TOKENS"
    word = content["text"].split()[2]
    stopped = (await _chat(http, stop_sequences=[word])).json()
    assert stopped["finish_reason"] == "STOP_SEQUENCE"


async def test_stream_events_are_named_and_typed(http: httpx.AsyncClient) -> None:
    whole = (await _chat(http)).json()
    answer = await _chat(http, stream=True)
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = sse_events(answer.content)
    assert all(name == data["type"] for name, data in events)
    names = [name for name, _ in events]
    assert names[:2] == ["message-start", "content-start"]
    assert names[-2:] == ["content-end", "message-end"]
    assert events[0][1]["id"]
    text = "".join(
        d["delta"]["message"]["content"]["text"] for n, d in events if n == "content-delta"
    )
    assert text == whole["message"]["content"][0]["text"]
    assert events[-1][1]["delta"] == {"finish_reason": "COMPLETE", "usage": whole["usage"]}


async def test_tool_calls_json_and_streamed(http: httpx.AsyncClient) -> None:
    done = (await _chat(http, tools=[TOOL])).json()
    assert done["finish_reason"] == "TOOL_CALL"
    (call,) = done["message"]["tool_calls"]
    assert done["message"]["tool_plan"]
    assert call["function"]["name"] == "lookup_bird"
    assert isinstance(json.loads(call["function"]["arguments"])["region"], str)
    events = sse_events((await _chat(http, tools=[TOOL], stream=True)).content)
    names = [n for n, _ in events]
    assert "tool-plan-delta" in names
    start = next(d for n, d in events if n == "tool-call-start")
    assert start["delta"]["message"]["tool_calls"]["id"] == call["id"]
    arguments = "".join(
        d["delta"]["message"]["tool_calls"]["function"]["arguments"]
        for n, d in events
        if n == "tool-call-delta"
    )
    assert arguments == call["function"]["arguments"]
    assert names[-2:] == ["tool-call-end", "message-end"]
    history = [
        *ASK,
        {"role": "assistant", "tool_plan": done["message"]["tool_plan"], "tool_calls": [call]},
        {
            "role": "tool",
            "tool_call_id": call["id"],
            "content": [{"type": "text", "text": "a wren"}],
        },
    ]
    closing = (await _chat(http, messages=history, tools=[TOOL])).json()
    assert closing["finish_reason"] == "COMPLETE"
    plain = (await _chat(http, tools=[TOOL], tool_choice="NONE")).json()
    assert plain["finish_reason"] == "COMPLETE"


async def test_embed(http: httpx.AsyncClient) -> None:
    body = {"model": "embed-english-v3.0", "texts": ["a wren", "a crow"],
            "input_type": "search_document", "embedding_types": ["float", "int8"]}  # fmt: skip
    done = (await http.post("/v2/embed", json=body, headers=AUTH)).json()
    assert len(done["embeddings"]["float"]) == 2
    assert len(done["embeddings"]["int8"][0]) == 1024
    assert done["texts"] == ["a wren", "a crow"]
    expected = count_text("a wren", "embed-english-v3.0") + count_text(
        "a crow", "embed-english-v3.0"
    )
    assert done["meta"]["billed_units"]["input_tokens"] == expected
    missing = await http.post("/v2/embed", json={**body, "input_type": None}, headers=AUTH)
    assert missing.status_code == 400
    assert "input_type" in missing.json()["message"]


@pytest.mark.parametrize(
    ("headers", "extra", "status", "text"),
    [
        ({}, {}, 401, "no api key supplied"),
        ({"authorization": "Bearer nope"}, {}, 401, "invalid api token"),
        (AUTH, {"model": "comand-r"}, 404, "model 'comand-r' not found"),
        (AUTH, {"max_completion_tokens": 3}, 400, "max_completion_tokens is not a valid field"),
        (AUTH, {"tool_choice": "REQUIRED"}, 400, "tool_choice requires tools"),
        (AUTH, {"p": 1.5}, 400, "p must be between"),
    ],
)
async def test_errors_are_cohere_shaped(
    http: httpx.AsyncClient, headers: dict[str, str], extra: dict[str, Any], status: int, text: str
) -> None:
    answer = await http.post(
        "/v2/chat", json={"model": MODEL, "messages": ASK, **extra}, headers=headers
    )
    assert answer.status_code == status
    assert set(answer.json()) == {"id", "message"}
    assert text in answer.json()["message"]


async def test_scripted_429_and_broken_stream(http: httpx.AsyncClient) -> None:
    await http.post("/_fake/faults", json={"provider": "cohere", "status": 429, "retry_after": 2})
    limited = await _chat(http)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    await http.post("/_fake/faults", json={"model": MODEL, "after_chunks": 3})
    with pytest.raises(httpx.RemoteProtocolError):
        await _chat(http, stream=True)
    stats = (await http.get("/_fake/stats")).json()
    assert stats["disconnects"] == 1
    assert "cohere" not in stats["providers"]
