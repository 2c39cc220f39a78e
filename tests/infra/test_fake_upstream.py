"""The fake upstream over real HTTP: OpenAI's wire shapes, exact usage, faults, limits, stats.

Each server runs for real (uvicorn, uvloop, httptools) on a free loopback port, in a thread
of its own; clients are the official ``openai`` SDK and raw httpx.
"""

from __future__ import annotations

import asyncio
import base64
import math
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam

from infra.fake_upstream.server import BackgroundFakeUpstream, serve
from infra.fake_upstream.settings import DEFAULT_MODELS, FakeUpstreamSettings
from schemas.tokens import count_chat_prompt, count_text
from tests.harness import free_port

MODEL = "gpt-4o-mini"
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Tell me about event sourcing.", "name": "ada"},
]
KEY = "sk-fake-upstream-test-key"


@pytest.fixture(scope="module")
def fake() -> Iterator[BackgroundFakeUpstream]:
    with BackgroundFakeUpstream(FakeUpstreamSettings()) as server:
        yield server


@pytest.fixture(scope="module")
def secured() -> Iterator[BackgroundFakeUpstream]:
    with BackgroundFakeUpstream(FakeUpstreamSettings(api_key=KEY)) as server:
        yield server


@pytest.fixture
async def client(fake: BackgroundFakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=fake.base_url, api_key="anything", max_retries=0)
    yield sdk
    await sdk.close()


@pytest.fixture
async def http(fake: BackgroundFakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake.root_url, timeout=10) as raw:
        yield raw


def _sse(raw: bytes) -> list[Any]:
    """Parse an SSE body strictly: every event is ``data: <json>\\n\\n``, the last [DONE]."""
    assert raw.endswith(b"data: [DONE]\n\n")
    events = raw.split(b"\n\n")
    assert events[-1] == b""
    out: list[Any] = []
    for event in events[:-1]:
        assert event.startswith(b"data: "), event
        payload = event.removeprefix(b"data: ")
        out.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))
    return out


async def test_completion_usage_is_exactly_what_schemas_tokens_counts(
    client: openai.AsyncOpenAI,
) -> None:
    raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    done = raw.parse()
    text = done.choices[0].message.content
    assert text
    assert done.id.startswith("chatcmpl-")
    assert done.object == "chat.completion"
    assert done.model == MODEL
    assert done.choices[0].finish_reason == "stop"
    assert done.choices[0].message.role == "assistant"
    assert done.usage is not None
    assert done.usage.prompt_tokens == count_chat_prompt(MESSAGES, MODEL)
    assert done.usage.completion_tokens == count_text(text, MODEL) == 24
    assert done.usage.total_tokens == done.usage.prompt_tokens + 24
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["openai-version"] == "2020-10-01"
    assert int(raw.headers["openai-processing-ms"]) >= 0
    assert raw.headers["content-type"] == "application/json"


async def test_wire_shape_of_a_completion(http: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 3}
    done = (await http.post("/v1/chat/completions", json=body)).json()
    assert list(done) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "service_tier",
        "system_fingerprint",
    ]
    assert done["choices"][0]["message"] == {
        "role": "assistant",
        "content": done["choices"][0]["message"]["content"],
        "refusal": None,
        "annotations": [],
    }
    assert done["choices"][0]["logprobs"] is None
    assert done["usage"]["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    assert done["usage"]["completion_tokens_details"] == {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    }


@pytest.mark.parametrize(
    ("model", "budget"), [("gpt-4o", 1), ("gpt-4.1", 7), ("gpt-3.5-turbo", 57), ("o3-mini", 300)]
)
async def test_max_tokens_gives_exactly_that_many_and_length(
    client: openai.AsyncOpenAI, model: str, budget: int
) -> None:
    done = await client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=budget)
    text = done.choices[0].message.content or ""
    assert done.choices[0].finish_reason == "length"
    assert done.usage is not None
    assert done.usage.completion_tokens == budget == count_text(text, model)
    newer = await client.chat.completions.create(
        model=model, messages=MESSAGES, max_completion_tokens=budget
    )
    assert newer.choices[0].message.content == text


async def test_same_request_same_text_and_seed_changes_it(client: openai.AsyncOpenAI) -> None:
    first = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    again = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    seeded = await client.chat.completions.create(model=MODEL, messages=MESSAGES, seed=7)
    other = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "something else"}]
    )
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.id != again.id
    assert seeded.choices[0].message.content != first.choices[0].message.content
    assert other.choices[0].message.content != first.choices[0].message.content


async def test_n_choices_sum_their_tokens(client: openai.AsyncOpenAI) -> None:
    done = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, n=3, max_tokens=5, user="u-1"
    )
    texts = [c.message.content or "" for c in done.choices]
    assert [c.index for c in done.choices] == [0, 1, 2]
    assert len(set(texts)) == 3
    assert done.usage is not None
    assert done.usage.completion_tokens == sum(count_text(t, MODEL) for t in texts) == 15


async def test_stop_sequence_cuts_the_text(client: openai.AsyncOpenAI) -> None:
    full = (await client.chat.completions.create(model=MODEL, messages=MESSAGES)).choices[0]
    text = full.message.content or ""
    stop = text.split(" ")[3]
    done = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stop=[stop, "zz"])
    cut = done.choices[0].message.content or ""
    assert cut == text[: text.index(stop)]
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None
    assert done.usage.completion_tokens == count_text(cut, MODEL) < 24


async def test_stream_matches_the_json_answer_and_ends_with_usage(
    client: openai.AsyncOpenAI,
) -> None:
    whole = await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=9)
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=9,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    deltas = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta]
    text = "".join(d for d in deltas if d)
    assert text == whole.choices[0].message.content
    assert len([d for d in deltas if d]) == 9  # one token per chunk
    assert chunks[-2].choices[0].finish_reason == "length"
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage == whole.usage
    assert len({c.id for c in chunks}) == 1


async def test_stream_raw_bytes_follow_openai_framing(http: httpx.AsyncClient) -> None:
    body = {
        "model": MODEL,
        "messages": MESSAGES,
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _sse(response.content)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert [len(c["choices"]) for c in chunks] == [1, 1, 1, 1, 1, 1, 0]
    assert chunks[0]["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "",
        "refusal": None,
    }
    assert all(c["object"] == "chat.completion.chunk" and "usage" in c for c in chunks)
    assert chunks[5]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "length",
    }
    assert chunks[6]["usage"]["completion_tokens"] == 4

    plain = await http.post("/v1/chat/completions", json={**body, "stream_options": None})
    assert all("usage" not in c for c in _sse(plain.content)[:-1])


async def test_forced_429_is_a_rate_limit_error_with_retry_after(
    client: openai.AsyncOpenAI,
) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            extra_headers={"x-fake-status": "429", "x-fake-retry-after": "7"},
        )
    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "7"
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-ratelimit-limit-requests" in error.response.headers
    assert "x-ratelimit-reset-requests" in error.response.headers
    assert error.response.json() == {
        "error": {
            "message": "Rate limit reached for requests. Please try again later.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


@pytest.mark.parametrize(
    ("status", "exception", "kind"),
    [
        ("500", openai.InternalServerError, "server_error"),
        ("502", openai.InternalServerError, "server_error"),
        ("503", openai.InternalServerError, "server_error"),
        ("400", openai.BadRequestError, "invalid_request_error"),
    ],
)
async def test_forced_statuses(
    client: openai.AsyncOpenAI, status: str, exception: type[openai.APIStatusError], kind: str
) -> None:
    with pytest.raises(exception) as caught:
        await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers={"x-fake-status": status}
        )
    assert caught.value.status_code == int(status)
    assert set(caught.value.response.json()["error"]) == {"message", "type", "param", "code"}
    assert caught.value.type == kind


async def test_malformed_json_is_a_400_not_a_500(http: httpx.AsyncClient) -> None:
    for content in (b"{not json", b"", b"[1, 2]"):
        response = await http.post(
            "/v1/chat/completions", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, content
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"].startswith("We could not parse the JSON body")


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": MESSAGES}, "model", None),
        ({"model": MODEL}, "messages", "missing_required_parameter"),
        ({"model": MODEL, "messages": "hi"}, "messages", "invalid_type"),
        ({"model": MODEL, "messages": []}, "messages", "empty_array"),
        ({"model": MODEL, "messages": [{"content": "x"}]}, "messages[0].role", None),
        ({"model": MODEL, "messages": MESSAGES, "max_tokens": "5"}, "max_tokens", "invalid_type"),
        ({"model": MODEL, "messages": MESSAGES, "max_tokens": 0}, "max_tokens", None),
        ({"model": MODEL, "messages": MESSAGES, "n": 500}, "n", "integer_above_max_value"),
        ({"model": MODEL, "messages": MESSAGES, "stream": "yes"}, "stream", "invalid_type"),
        ({"model": MODEL, "messages": MESSAGES, "max_tokens": 10**6}, "max_tokens", None),
    ],
)
async def test_invalid_requests_name_the_param(
    http: httpx.AsyncClient, body: dict[str, Any], param: str, code: str | None
) -> None:
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code


async def test_unknown_model_is_openai_404(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model="gpt-9-turbo", messages=MESSAGES)
    assert caught.value.code == "model_not_found"
    assert caught.value.message.endswith(
        "The model `gpt-9-turbo` does not exist or you do not have access to it."
    )


async def test_api_key_is_enforced_when_configured(secured: BackgroundFakeUpstream) -> None:
    bad = openai.AsyncOpenAI(base_url=secured.base_url, api_key="sk-wrong-key-0000", max_retries=0)
    good = openai.AsyncOpenAI(base_url=secured.base_url, api_key=KEY, max_retries=0)
    try:
        with pytest.raises(openai.AuthenticationError) as caught:
            await bad.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert caught.value.code == "invalid_api_key"
        assert "Incorrect API key provided: sk-********0000." in caught.value.message
        with pytest.raises(openai.AuthenticationError):
            await bad.models.list()
        done = await good.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert done.choices[0].message.content
    finally:
        await bad.close()
        await good.close()
    async with httpx.AsyncClient() as raw:
        missing = await raw.post(f"{secured.base_url}/chat/completions", json={})
    assert missing.status_code == 401
    assert missing.json()["error"]["message"].startswith("You didn't provide an API key.")


async def test_omit_usage_drops_it_from_json_and_stream(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    omit = {"x-fake-omit-usage": "1"}
    done = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=6, extra_headers=omit
    )
    assert done.usage is None
    assert count_text(done.choices[0].message.content or "", MODEL) == 6
    body = {
        "model": MODEL,
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = await http.post("/v1/chat/completions", json=body, headers=omit)
    chunks = _sse(response.content)[:-1]
    assert all("usage" not in c and c["choices"] for c in chunks)


@pytest.mark.parametrize("pace", ["0", "400"])  # written at once, or token by token
async def test_disconnect_mid_stream_breaks_the_client(
    client: openai.AsyncOpenAI, pace: str
) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-fake-disconnect-after-tokens": "3", "x-fake-tokens-per-second": pace},
    )
    contents: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            assert chunk.choices[0].finish_reason is None
            if chunk.choices[0].delta.content:
                contents.append(chunk.choices[0].delta.content)
    assert len(contents) == 3
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers={"x-fake-disconnect-after-tokens": "0"}
        )


async def test_rpm_limit_answers_429_past_the_limit() -> None:
    with BackgroundFakeUpstream(FakeUpstreamSettings(rpm_limit=3)) as limited:
        sdk = openai.AsyncOpenAI(base_url=limited.base_url, api_key="k", max_retries=0)
        try:
            for left in (2, 1, 0):
                raw = await sdk.chat.completions.with_raw_response.create(
                    model=MODEL, messages=MESSAGES
                )
                assert raw.headers["x-ratelimit-limit-requests"] == "3"
                assert raw.headers["x-ratelimit-remaining-requests"] == str(left)
            with pytest.raises(openai.RateLimitError) as caught:
                await sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
        finally:
            await sdk.close()
    assert 55 <= int(caught.value.response.headers["retry-after"]) <= 60
    assert caught.value.code == "rate_limit_exceeded"
    assert f"Rate limit reached for {MODEL}" in caught.value.message


async def test_stats_equal_the_usage_that_was_returned(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    assert (await http.post("/_fake/reset")).json() == {"status": "reset"}
    told: dict[str, list[int]] = {}

    def add(model: str, prompt: int, completion: int) -> None:
        entry = told.setdefault(model, [0, 0, 0])
        entry[0] += 1
        entry[1] += prompt
        entry[2] += completion

    for model, budget in (("gpt-4o", 5), ("gpt-4o", None), ("gpt-4.1-mini", 11)):
        done = await client.chat.completions.create(
            model=model, messages=MESSAGES, max_tokens=budget
        )
        assert done.usage is not None
        add(model, done.usage.prompt_tokens, done.usage.completion_tokens)
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}, n=2
    )
    last = [chunk async for chunk in stream][-1]
    assert last.usage is not None
    add("gpt-4o", last.usage.prompt_tokens, last.usage.completion_tokens)
    omitted = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=4, extra_headers={"x-fake-omit-usage": "1"}
    )
    add("gpt-4o", count_chat_prompt(MESSAGES, "gpt-4o"), 4)
    assert omitted.usage is None
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers={"x-fake-status": "500"}
        )

    stats = (await http.get("/_fake/stats")).json()
    served = {
        m: [s["requests"], s["prompt_tokens"], s["completion_tokens"]]
        for m, s in stats["models"].items()
    }
    assert served == told
    assert stats["statuses"] == {"200": 5, "500": 1}
    assert stats["requests"] == 6


async def test_ttft_and_token_pacing_are_honoured(
    client: openai.AsyncOpenAI,
) -> None:
    started = time.perf_counter()
    await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=3)
    assert time.perf_counter() - started < 0.25

    started = time.perf_counter()
    await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=3, extra_headers={"x-fake-ttft-ms": "300"}
    )
    assert 0.29 <= time.perf_counter() - started < 1.5

    started = time.perf_counter()
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=6,
        stream=True,
        extra_headers={"x-fake-ttft-ms": "200", "x-fake-tokens-per-second": "25"},
    )
    arrivals = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter() - started)
    assert 0.19 <= arrivals[0] < 1.0
    assert 0.18 <= arrivals[-1] - arrivals[0] < 1.5  # 5 gaps of 40 ms


async def test_settings_pace_non_stream_completions() -> None:
    settings = FakeUpstreamSettings(ttft_ms=100, tokens_per_second=50)
    with BackgroundFakeUpstream(settings) as paced:
        async with httpx.AsyncClient(base_url=paced.base_url) as raw:
            body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 10}
            started = time.perf_counter()
            response = await raw.post("/chat/completions", json=body)
            elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert 0.29 <= elapsed < 1.5  # 100 ms + 10 tokens at 50/s
    assert int(response.headers["openai-processing-ms"]) >= 290


async def test_hang_times_out_the_client_and_never_blocks_shutdown() -> None:
    server = BackgroundFakeUpstream().start()
    sdk = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    try:
        with pytest.raises(openai.APITimeoutError):
            await sdk.chat.completions.create(
                model=MODEL, messages=MESSAGES, extra_headers={"x-fake-hang": "1"}, timeout=0.3
            )
        async with httpx.AsyncClient(timeout=30) as raw:
            pending = asyncio.create_task(
                raw.post(
                    f"{server.base_url}/chat/completions",
                    json={"model": MODEL, "messages": MESSAGES},
                    headers={"x-fake-hang": "1"},
                )
            )
            await asyncio.sleep(0.2)
            assert not pending.done()
            started = time.perf_counter()
            await asyncio.to_thread(server.stop)
            assert time.perf_counter() - started < 3
            response = await pending
        assert response.status_code == 503
    finally:
        await sdk.close()
        if server.running:
            server.stop()


async def test_embeddings_and_models_through_the_sdk(client: openai.AsyncOpenAI) -> None:
    inputs = ["hello world", "event sourcing keeps every fact"]
    done = await client.embeddings.create(model="text-embedding-3-small", input=inputs)
    assert [d.index for d in done.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in done.data)
    assert all(math.isclose(sum(v * v for v in d.embedding), 1.0, abs_tol=1e-5) for d in done.data)
    tokens = sum(count_text(t, "text-embedding-3-small") for t in inputs)
    assert done.usage.prompt_tokens == done.usage.total_tokens == tokens
    again = await client.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert again.data[0].embedding == done.data[0].embedding
    wide = await client.embeddings.create(
        model="text-embedding-3-large", input="hello world", dimensions=16
    )
    assert len(wide.data[0].embedding) == 16
    packed = await client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="hello world", encoding_format="base64"
    )
    vector = orjson.loads(packed.content)["data"][0]["embedding"]
    floats = struct.unpack("<8f", base64.b64decode(vector))
    assert all(
        math.isclose(a, b, abs_tol=1e-6)
        for a, b in zip(floats, done.data[0].embedding, strict=True)
    )

    models = await client.models.list()
    assert [m.id for m in models.data] == list(DEFAULT_MODELS)
    assert (await client.models.retrieve("gpt-4o")).owned_by == "system"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("gpt-nope")


async def test_serve_in_a_running_loop_until_cancelled() -> None:
    port = free_port()
    ready = asyncio.Event()
    task = asyncio.create_task(
        serve(FakeUpstreamSettings(), port=port, ready=ready, announce=False)
    )
    await asyncio.wait_for(ready.wait(), 10)
    async with httpx.AsyncClient() as raw:
        assert (await raw.get(f"http://127.0.0.1:{port}/health")).json() == {"status": "ok"}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as raw:
            await raw.get(f"http://127.0.0.1:{port}/health")


def test_command_line_serves_and_stops_on_sigterm() -> None:
    port = free_port()
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.fake_upstream", "--port", str(port), "--rpm-limit", "100"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == f"fake upstream (openai) listening on http://127.0.0.1:{port}/v1"
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": MODEL, "messages": MESSAGES},
        )
        assert response.headers["x-ratelimit-limit-requests"] == "100"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


async def test_directives_in_body_metadata_work_like_headers(client: openai.AsyncOpenAI) -> None:
    """Through a gateway only the body reaches the fake: ``metadata.fake_*`` carries faults."""
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_body={"metadata": {"fake_status": "500"}}
        )
    quiet = await client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        max_tokens=3,
        extra_body={"metadata": {"fake_omit_usage": "1", "team": "kept-as-is"}},
    )
    assert quiet.usage is None and quiet.choices[0].message.content
