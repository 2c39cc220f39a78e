"""Pricing follows what was served: the upstream model first, the public name as fallback."""

from __future__ import annotations

from decimal import Decimal

from processors.usage.accounting import record_usage
from schemas.events import ResponseCompleted
from schemas.pricing import build_price_book

USAGE = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000, "total_tokens": 2_000_000}


def response(model: str, upstream: str) -> ResponseCompleted:
    return ResponseCompleted(
        request_id="r1",
        tenant="t",
        key_id="k",
        provider="p",
        model=model,
        upstream_model=upstream,
        status=200,
        latency_ms=1.0,
        usage=USAGE,
    )


def test_upstream_model_prices_a_bedrock_id_behind_a_custom_name() -> None:
    book = build_price_book([])
    served = record_usage(
        response("claude-on-bedrock", "us.anthropic.claude-3-5-sonnet-20240620-v1:0"), None, book
    )
    assert Decimal(served.cost) == Decimal("18.00")  # 3 + 15 per 1M
    assert served.price_ref.startswith("*anthropic.claude-3-5-sonnet*")


def test_public_name_prices_an_unknown_azure_deployment() -> None:
    served = record_usage(response("gpt-4o-mini", "prod-mini-eu"), None, build_price_book([]))
    assert Decimal(served.cost) == Decimal("0.75")  # 0.15 + 0.60 per 1M
