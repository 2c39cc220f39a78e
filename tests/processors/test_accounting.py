"""Pricing follows what was served: the upstream model first, the public name as fallback."""

from __future__ import annotations

from decimal import Decimal

from processors.usage.accounting import record_usage
from schemas.events import ResponseCompleted
from schemas.pricing import Price, build_price_book
from schemas.tokens import count_text

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


def test_a_deployment_override_prices_what_that_deployment_served() -> None:
    negotiated = Price("gpt-4o-mini", Decimal("0.10"), Decimal("0.40"), deployment="az/mini")
    book = build_price_book([negotiated])
    there = response("gpt-4o-mini", "gpt-4o-mini")
    there.deployment = "az/mini"
    elsewhere = response("gpt-4o-mini", "gpt-4o-mini")
    elsewhere.deployment = "openai/gpt-4o-mini"
    assert Decimal(record_usage(there, None, book).cost) == Decimal("0.50")
    assert Decimal(record_usage(elsewhere, None, book).cost) == Decimal("0.75")


def test_audio_and_image_tokens_are_recorded_apart() -> None:
    answer = response("gpt-4o-mini", "gpt-4o-mini")
    answer.usage = {
        **USAGE,
        "prompt_tokens_details": {"audio_tokens": 7, "image_tokens": 11},
        "completion_tokens_details": {"audio_tokens": 5},
    }
    recorded = record_usage(answer, None, build_price_book([]))
    parts = (recorded.audio_prompt_tokens, recorded.image_prompt_tokens)
    assert (*parts, recorded.audio_completion_tokens) == (7, 11, 5)


def test_the_ingress_count_bills_an_answer_the_event_does_not_hold() -> None:
    """No provider usage and outputs left out (body policy ``none``): the ingress's count."""
    book = build_price_book([])
    left_out = response("gpt-4o-mini", "")
    left_out.usage, left_out.outputs, left_out.outputs_kept = None, [], "none"
    left_out.completion_tokens = 57
    usage = record_usage(left_out, 12, book)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.token_source) == (
        12,
        57,
        "tiktoken",
    )
    whole = response("gpt-4o-mini", "")
    whole.usage, whole.outputs = None, ["four words of answer"]
    assert record_usage(whole, 12, book).completion_tokens == count_text(
        "four words of answer", "gpt-4o-mini"
    )
