"""The pre-flight estimate of a request: prompt tokens by tiktoken plus the most it may
generate, priced at the model's rates. Admission charges it before the provider answers;
the processors replace it with the real cost when the response is counted."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from schemas.events import Usage
from schemas.pricing import Price
from schemas.tokens import count_chat_prompt, count_text


def input_tokens(body: dict[str, Any], model: str) -> int:
    """The prompt's (or the embeddings input's) tokens by tiktoken."""
    messages = body.get("messages")
    if isinstance(messages, list):
        return count_chat_prompt([m for m in messages if isinstance(m, dict)], model)
    given = body.get("input")
    items = given if isinstance(given, list) else [given]
    total = 0
    for item in items:
        if isinstance(item, str):
            total += count_text(item, model)
        elif isinstance(item, list):  # token ids
            total += len(item)
    return total


def _output_tokens(body: dict[str, Any], default: int) -> int:
    if "input" in body and "messages" not in body:
        return 0  # embeddings produce no tokens
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    limit = limit if isinstance(limit, int) and limit > 0 else default
    choices = body.get("n")
    return limit * (choices if isinstance(choices, int) and choices > 0 else 1)


def estimate(
    body: dict[str, Any],
    model: str,
    price: Price | None,
    default_max_tokens: int,
    prompt: int | None = None,
) -> tuple[Decimal, int, int]:
    """(USD, tokens) this request may cost at most, as far as can be known before it runs,
    and the prompt tokens counted for it (published, so nobody counts them again). A
    ``prompt`` already counted (off the event loop, for a large body) is used as is."""
    if prompt is None:
        prompt = input_tokens(body, model)
    output = _output_tokens(body, default_max_tokens)
    usd = price.cost(Usage(prompt_tokens=prompt, completion_tokens=output)) if price else Decimal(0)
    return usd, prompt + output, prompt
