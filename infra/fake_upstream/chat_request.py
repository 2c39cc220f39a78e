"""Reading an OpenAI chat request into the choices it gets: validation, then ``reply``.

``Flavor`` says how Azure and Mistral differ from OpenAI in what they accept and send.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from infra.fake_upstream import errors
from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.providers import openai_request as req
from infra.fake_upstream.providers.reply import Ask, Reply, reply

MAX_COMPLETION_TOKENS = 100_000
ROLES = ("system", "developer", "user", "assistant", "tool", "function")


@dataclass(frozen=True, slots=True)
class Flavor:
    provider: str = "openai"
    forced_tool: str = "required"
    """The ``tool_choice`` word forcing some tool call (Mistral: ``any``)."""
    seed_field: str = "seed"
    azure: bool = False
    """Azure's ``prompt_filter_results`` and ``content_filter_results``."""
    lean: bool = False
    """Mistral: usage always in the last chunk, no OpenAI-only fields."""


OPENAI = Flavor()


@dataclass(frozen=True, slots=True)
class Answer:
    model: str
    replies: list[Reply]
    prompt_tokens: int
    completion_tokens: int
    longest: int  # tokens of the longest choice: what non-stream pacing waits for
    top_logprobs: int | None = None


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
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise errors.missing(f"messages[{i}].tool_call_id")
    return messages


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None or isinstance(stop, str):
        return (stop,) if stop else ()
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise errors.invalid_type("stop", "a string or an array of strings", stop)
    if len(stop) > 4:
        raise ApiError(400, "Invalid 'stop': array too long.", "stop", "array_above_max_length")
    return tuple(stop)


def answer(
    body: dict[str, Any], model: str, default_tokens: int, flavor: Flavor = OPENAI
) -> Answer:
    """The choices this request gets: deterministic, cut to its budget or stop sequence."""
    messages = _messages(body)
    if not isinstance(body.get("stream", False), bool | None):
        raise errors.invalid_type("stream", "a boolean", body["stream"])
    budget = _budget(body)
    n = _positive_int(body, "n", 128) or 1
    specs = req.tools(body)
    ask = Ask(
        model=model,
        material=messages,
        budget=budget,
        default_tokens=default_tokens,
        stop=_stop(body),
        tools=specs,
        tool_choice=req.tool_choice(body, specs, flavor.forced_tool),
        after_tool=messages[-1].get("role") in ("tool", "function"),
        json_schema=req.response_format(body),
        seed=body.get(flavor.seed_field),
    )
    top = None if flavor.lean else req.top_logprobs(body)
    replies = [reply(dataclasses.replace(ask, index=i)) for i in range(n)]
    prompt = req.prompt_tokens(messages, model, body.get("tools"))
    counts = [r.tokens for r in replies]
    return Answer(model, replies, prompt, sum(counts), max(counts), top)
