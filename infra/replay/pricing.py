"""The dry run: what replaying the selection to each variant would cost, before sending.

Prompt tokens are the recorded ones (the provider's count) or tiktoken's; completion tokens
are the recorded answer's, else ``max_tokens``, else the admission default. Each variant
is priced at its model's current price in the price book (catalog plus config).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from infra.replay.records import Recorded
from infra.replay.spec import ExperimentSpec
from infra.replay.variants import body_for
from schemas.events import Usage, now_ms
from schemas.pricing import PriceBook
from schemas.tokens import count_chat_prompt


@dataclass(slots=True)
class Estimate:
    variant: str
    model: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: Decimal = Decimal(0)
    unpriced: int = 0
    """Requests whose model has no price: counted, not priced."""


def estimate(
    spec: ExperimentSpec, records: list[Recorded], prices: PriceBook, default_max_tokens: int
) -> list[Estimate]:
    at = now_ms()
    out = []
    for variant in spec.variants:
        models: set[str] = set()
        total = Estimate(variant.name, "")
        for record in records:
            body = body_for(variant, record.body, record.model)
            model = str(body["model"])
            models.add(model)
            prompt = record.prompt_tokens if not variant.system and not variant.template else 0
            if not prompt:
                prompt = count_chat_prompt(body.get("messages") or [], model)
            completion = record.completion_tokens or int(
                body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens
            )
            total.requests += 1
            total.prompt_tokens += prompt
            total.completion_tokens += completion
            price = prices.lookup(model, at)
            if price is None:
                total.unpriced += 1
            else:
                total.usd += price.cost(Usage(prompt_tokens=prompt, completion_tokens=completion))
        total.model = ", ".join(sorted(models)) or (variant.model or "(as recorded)")
        out.append(total)
    return out
