"""Gemini (v1beta) over real HTTP: JSON, SSE and JSON-array streams, tools, embeddings, errors."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from infra.fake_upstream.providers.reply import prompt_tokens
from schemas.tokens import count_text
from tests.infra.fake_upstream.conftest import KEY, sse_events

MODEL = "gemini-2.5-flash"
BASE = f"/v1beta/models/{MODEL}"
AUTH = {"x-goog-api-key": KEY}
ASK = {"contents": [{"role": "user", "parts": [{"text": "Describe a glacier."}]}]}
TOOLS = [
    {
        "functionDeclarations": [
            {
                "name": "measure",
                "description": "Measure ice",
                "parameters": {
                    "type": "OBJECT",
                    "properties": {"depth": {"type": "NUMBER"}, "site": {"type": "STRING"}},
                    "required": ["depth"],
                },
            }
        ]
    }
]


async def _post(http: httpx.AsyncClient, method: str, body: Any, **kw: Any) -> httpx.Response:
    return await http.post(f"{BASE}:{method}", json=body, headers=kw.pop("headers", AUTH), **kw)


async def test_generate_content_with_exact_usage(http: httpx.AsyncClient) -> None:
    body = {**ASK, "systemInstruction": {"parts": [{"text": "Be exact."}]}}
    done = (await _post(http, "generateContent", body)).json()
    (candidate,) = done["candidates"]
    text = candidate["content"]["parts"][0]["text"]
    assert candidate["content"]["role"] == "model"
    assert candidate["finishReason"] == "STOP"
    assert candidate["index"] == 0
    usage = done["usageMetadata"]
    assert usage["candidatesTokenCount"] == count_text(text, MODEL) == 24
    assert usage["promptTokenCount"] == prompt_tokens(MODEL, ["Be exact.", "Describe a glacier."])
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + 24
    assert done["modelVersion"] == MODEL
    assert done["responseId"]
    counted = (await _post(http, "countTokens", body)).json()
    assert counted["totalTokens"] == usage["promptTokenCount"]
    wrapped = await _post(
        http, "countTokens", {"generateContentRequest": {"model": f"models/{MODEL}", **body}}
    )
    assert wrapped.json()["totalTokens"] == usage["promptTokenCount"]


async def test_max_tokens_candidates_and_key_in_query(http: httpx.AsyncClient) -> None:
    body = {**ASK, "generationConfig": {"maxOutputTokens": 4, "candidateCount": 2, "seed": 9}}
    done = (await _post(http, "generateContent", body, headers={}, params={"key": KEY})).json()
    assert [c["finishReason"] for c in done["candidates"]] == ["MAX_TOKENS", "MAX_TOKENS"]
    assert done["usageMetadata"]["candidatesTokenCount"] == 8
    last = (await http.get("/_fake/last?provider=gemini")).json()
    assert last["query"] == {"key": "<redacted>"}
    assert KEY not in orjson.dumps(last).decode()


async def test_sse_stream_matches_the_json_answer(http: httpx.AsyncClient) -> None:
    whole = (await _post(http, "generateContent", ASK)).json()
    answer = await _post(http, "streamGenerateContent", ASK, params={"alt": "sse"})
    assert answer.headers["content-type"].startswith("text/event-stream")
    chunks = [data for name, data in sse_events(answer.content, b"\r\n\r\n")]
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == whole["candidates"][0]["content"]["parts"][0]["text"]
    assert "finishReason" not in chunks[0]["candidates"][0]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"] == whole["usageMetadata"]
    array = await _post(http, "streamGenerateContent", ASK)
    assert array.headers["content-type"] == "application/json"
    assert [c["candidates"][0]["content"] for c in array.json()] == [
        c["candidates"][0]["content"] for c in chunks
    ]
    stats = (await http.get("/_fake/stats")).json()
    assert stats["models"][MODEL]["requests"] == 3


async def test_function_calls_and_json_output(http: httpx.AsyncClient) -> None:
    done = (await _post(http, "generateContent", {**ASK, "tools": TOOLS})).json()
    call = done["candidates"][0]["content"]["parts"][0]["functionCall"]
    assert call["name"] == "measure"
    assert isinstance(call["args"]["depth"], float | int)
    history = {
        "contents": [
            *ASK["contents"],
            {"role": "model", "parts": [{"functionCall": call}]},
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "measure", "response": {"m": 3}}}],
            },
        ],
        "tools": TOOLS,
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    }
    closing = (await _post(http, "generateContent", history)).json()
    assert "text" in closing["candidates"][0]["content"]["parts"][0]
    config = {
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"ok": {"type": "BOOLEAN"}}},
    }
    shaped = (await _post(http, "generateContent", {**ASK, "generationConfig": config})).json()
    document = orjson.loads(shaped["candidates"][0]["content"]["parts"][0]["text"])
    assert isinstance(document["ok"], bool)


async def test_embeddings(http: httpx.AsyncClient) -> None:
    one = {"content": {"parts": [{"text": "ice"}]}, "outputDimensionality": 16}
    single = (
        await http.post("/v1beta/models/text-embedding-004:embedContent", json=one, headers=AUTH)
    ).json()
    assert len(single["embedding"]["values"]) == 16
    batch = {"requests": [{"model": "models/text-embedding-004", **one}] * 2}
    many = await http.post(
        "/v1beta/models/text-embedding-004:batchEmbedContents", json=batch, headers=AUTH
    )
    assert [e["values"] for e in many.json()["embeddings"]] == [single["embedding"]["values"]] * 2
    stats = (await http.get("/_fake/stats")).json()
    assert stats["embeddings"]["text-embedding-004"] == {"requests": 2, "prompt_tokens": 3}


@pytest.mark.parametrize(
    ("headers", "body", "path", "status", "state", "text"),
    [
        ({}, ASK, BASE, 403, "PERMISSION_DENIED", "unregistered callers"),
        ({"x-goog-api-key": "nope"}, ASK, BASE, 400, "INVALID_ARGUMENT", "API key not valid"),
        (AUTH, {"prompt": "x"}, BASE, 400, "INVALID_ARGUMENT", 'Unknown name "prompt"'),
        (
            AUTH,
            {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
            BASE,
            400,
            "INVALID_ARGUMENT",
            "valid role",
        ),
        (
            AUTH,
            {**ASK, "generationConfig": {"max_tokens": 3}},
            BASE,
            400,
            "INVALID_ARGUMENT",
            "Unknown name \"max_tokens\" at 'generation_config'",
        ),
        (AUTH, ASK, "/v1beta/models/gemni-pro", 404, "NOT_FOUND", "models/gemni-pro is not found"),
    ],
)
async def test_errors_are_google_shaped(  # noqa: PLR0917 (parametrized)
    http: httpx.AsyncClient,
    headers: dict[str, str],
    body: Any,
    path: str,
    status: int,
    state: str,
    text: str,
) -> None:
    answer = await http.post(f"{path}:generateContent", json=body, headers=headers)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["code"] == status
    assert error["status"] == state
    assert text in error["message"]


async def test_scripted_429_carries_retry_info(http: httpx.AsyncClient) -> None:
    await http.post("/_fake/faults", json={"provider": "gemini", "status": 429, "retry_after": 9})
    await http.post("/_fake/faults", json={"provider": "gemini", "status": 503})
    limited = await _post(http, "generateContent", ASK)
    assert limited.status_code == 429
    assert "retry-after" not in limited.headers
    error = limited.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "9s"}
    ]
    unavailable = await _post(http, "generateContent", ASK)
    assert unavailable.json()["error"]["status"] == "UNAVAILABLE"
