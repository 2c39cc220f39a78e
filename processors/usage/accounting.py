"""Tokens and cost of one request: the provider's report when present, else tiktoken.

Pure functions, so the rule is testable without Kafka and identical on replay.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from schemas.events import RequestReceived, ResponseCompleted, Usage, UsageRecorded
from schemas.pricing import PriceBook
from schemas.tokens import count_chat_prompt, count_text

_USAGE_NAMESPACE = uuid.UUID("5d1f3a52-7c0e-4b7a-9a55-0c2f8f3e9b11")


def usage_event_id(request_id: str) -> str:
    """Deterministic, so recomputing a request's usage yields the same event id."""
    return str(uuid.uuid5(_USAGE_NAMESPACE, request_id))


def prompt_tokens(request: RequestReceived) -> int:
    """The ingress's count when it sent one (it had it, or ``body`` is not whole)."""
    if request.prompt_tokens is not None:
        return request.prompt_tokens
    messages = request.body.get("messages") or []
    return count_chat_prompt([m for m in messages if isinstance(m, dict)], request.model)


def usage_of(response: ResponseCompleted, counted_prompt_tokens: int | None) -> tuple[Usage, str]:
    """The usage to bill and where it came from (``provider`` or ``tiktoken``)."""
    if response.usage:
        return Usage.from_openai(response.usage), "provider"
    if counted_prompt_tokens is None:
        raise ValueError(f"request {response.request_id}: no provider usage and no prompt count")
    completion = response.completion_tokens
    if completion is None:
        completion = sum(count_text(text, response.model) for text in response.outputs)
    return Usage(prompt_tokens=counted_prompt_tokens, completion_tokens=completion), "tiktoken"


def record_usage(
    response: ResponseCompleted, counted_prompt_tokens: int | None, prices: PriceBook
) -> UsageRecorded:
    usage, source = usage_of(response, counted_prompt_tokens)
    # what was served decides the price (an Azure deployment or a Bedrock id may be priced
    # apart from the public name); the public name is the fallback
    deployment = response.deployment
    price = (
        prices.lookup(response.upstream_model, response.ts, deployment)
        if response.upstream_model
        else None
    ) or prices.lookup(response.model, response.ts, deployment)
    cost = price.cost(usage) if price else Decimal(0)
    return UsageRecorded(
        id=usage_event_id(response.request_id),
        ts=response.ts,
        request_id=response.request_id,
        tenant=response.tenant,
        key_id=response.key_id,
        provider=response.provider,
        model=response.model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        audio_prompt_tokens=usage.audio_prompt_tokens,
        image_prompt_tokens=usage.image_prompt_tokens,
        audio_completion_tokens=usage.audio_completion_tokens,
        token_source=source,
        cost=str(cost),
        currency=price.currency if price else "USD",
        price_ref=price.ref if price else "unpriced",
    )
