"""``POST /v1/chat/completions``: validation, deterministic choices, JSON or SSE answers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from infra.fake_upstream import errors, wire
from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.faults import DropConnection, DroppedResponse, Faults
from infra.fake_upstream.sse import event_stream
from infra.fake_upstream.text import apply_stop, completion, pieces, request_key
from infra.fake_upstream.upstream import Upstream
from schemas.tokens import count_chat_prompt, count_text

MAX_COMPLETION_TOKENS = 100_000
ROLES = ("system", "developer", "user", "assistant", "tool", "function")


@dataclass(frozen=True, slots=True)
class Answer:
    model: str
    choices: list[wire.Choice]
    prompt_tokens: int
    completion_tokens: int
    longest: int  # tokens of the longest choice: what non-stream pacing waits for


def _positive_int(body: dict[str, Any], param: str, maximum: int | None = None) -> int | None:
    value = body.get(param)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise errors.invalid_type(param, "an integer", value)
    if value < 1:
        raise errors.below_minimum(param, 1, value)
    if maximum is not None and value > maximum:
        raise errors.above_maximum(param, maximum, value)
    return value


def _budget(body: dict[str, Any]) -> int | None:
    """max_completion_tokens, else max_tokens, within what the largest models allow."""
    for param in ("max_completion_tokens", "max_tokens"):
        budget = _positive_int(body, param)
        if budget is not None and budget > MAX_COMPLETION_TOKENS:
            message = (
                f"{param} is too large: {budget}. This model supports at most "
                f"{MAX_COMPLETION_TOKENS} completion tokens, whereas you provided {budget}."
            )
            raise ApiError(400, message, param, "invalid_value")
        if budget is not None:
            return budget
    return None


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if messages is None:
        raise errors.missing("messages")
    if not isinstance(messages, list):
        raise errors.invalid_type("messages", "an array of objects", messages)
    if not messages:
        raise errors.empty_array("messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise errors.invalid_type(f"messages[{i}]", "an object", message)
        role = message.get("role")
        if role is None:
            raise errors.missing(f"messages[{i}].role")
        if role not in ROLES:
            supported = ", ".join(f"'{r}'" for r in ROLES[:-1]) + f", and '{ROLES[-1]}'"
            message_text = f"Invalid value: '{role}'. Supported values are: {supported}."
            raise ApiError(400, message_text, f"messages[{i}].role", "invalid_value")
    return messages


def _stop(body: dict[str, Any]) -> str | list[str] | None:
    stop = body.get("stop")
    if stop is None or isinstance(stop, str):
        return stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise errors.invalid_type("stop", "a string or an array of strings", stop)
    if len(stop) > 4:
        raise ApiError(400, "Invalid 'stop': array too long.", "stop", "array_above_max_length")
    return stop


def answer(body: dict[str, Any], model: str, default_tokens: int) -> Answer:
    """The choices this request gets: deterministic, cut to its budget or stop sequence."""
    messages = _messages(body)
    if not isinstance(body.get("stream", False), bool | None):
        raise errors.invalid_type("stream", "a boolean", body["stream"])
    budget = _budget(body)
    n = _positive_int(body, "n", 128) or 1
    stop = _stop(body)
    seed = body.get("seed")
    choices: list[wire.Choice] = []
    counts: list[int] = []
    for index in range(n):
        tokens = budget or default_tokens
        text = completion(model, request_key(messages, seed, index), tokens, budget is None)
        text, stopped = apply_stop(text, stop)
        counts.append(count_text(text, model) if stopped else tokens)
        choices.append((text, "length" if budget is not None and not stopped else "stop"))
    prompt = count_chat_prompt(messages, model)
    return Answer(model, choices, prompt, sum(counts), max(counts))


async def chat_completions(upstream: Upstream, request: Request) -> Response:
    faults, headers, started = await upstream.admit(request)
    body, model = await upstream.body(request, headers)
    try:
        result = answer(body, model, upstream.settings.default_completion_tokens)
    except ApiError as exc:
        exc.headers = headers
        raise
    use = None if faults.omit_usage else wire.usage(result.prompt_tokens, result.completion_tokens)
    stream = body.get("stream") is True
    await upstream.pause(faults.ttft_ms / 1000)
    if not stream and faults.tokens_per_second > 0:
        await upstream.pause(result.longest / faults.tokens_per_second)
    headers["openai-processing-ms"] = str(round((time.perf_counter() - started) * 1000))
    upstream.stats.answered(200)
    if stream:
        options = body.get("stream_options")
        include = isinstance(options, dict) and options.get("include_usage") is True
        events = _events(upstream, faults, result, use, include and use is not None)
        return event_stream(events, headers, paced=faults.tokens_per_second > 0)
    content = wire.chat_completion(wire.completion_id(), model, result.choices, use)
    if faults.disconnect_after_tokens is not None:
        upstream.stats.disconnects += 1
        return DroppedResponse(content, 200, headers, "application/json")
    upstream.stats.completed(model, result.prompt_tokens, result.completion_tokens)
    return Response(content, 200, headers, "application/json")


async def _events(
    upstream: Upstream,
    faults: Faults,
    result: Answer,
    use: dict[str, Any] | None,
    usage_field: bool,
) -> AsyncIterator[bytes]:
    """OpenAI's SSE sequence: role, one token per chunk, finish, [usage], [DONE]."""
    chunks = wire.Chunks(result.model, usage_field)
    delay = 1 / faults.tokens_per_second if faults.tokens_per_second > 0 else 0.0
    limit = faults.disconnect_after_tokens
    sent = 0
    for index, (text, finish) in enumerate(result.choices):
        yield chunks.event([wire.role_delta(index)])
        for piece in pieces(result.model, text):
            if limit is not None and sent >= limit:
                upstream.stats.disconnects += 1
                raise DropConnection("x-fake-disconnect-after-tokens")
            if delay and sent:
                await upstream.pause(delay)
            yield chunks.event([wire.content_delta(index, piece)])
            sent += 1
        if limit is not None and sent >= limit and index == len(result.choices) - 1:
            upstream.stats.disconnects += 1
            raise DropConnection("x-fake-disconnect-after-tokens")
        yield chunks.event([wire.finish_delta(index, finish)])
    if usage_field:
        yield chunks.event([], use)
    yield wire.DONE
    upstream.stats.completed(result.model, result.prompt_tokens, result.completion_tokens)
