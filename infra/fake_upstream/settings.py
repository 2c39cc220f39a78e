"""How the fake upstream behaves unless a request's ``x-fake-*`` headers say otherwise."""

from __future__ import annotations

from dataclasses import dataclass

# Models it answers for; anything else is a 404 ``model_not_found``, as OpenAI says it.
# Every chat model here has a price in schemas/pricing_catalog.yaml, so the gateway can cost it.
DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o3-mini",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-3.5-turbo",
    "text-embedding-3-small",
    "text-embedding-3-large",
)


@dataclass(frozen=True, slots=True)
class FakeUpstreamSettings:
    ttft_ms: float = 0.0
    """Delay before the first byte of an answer (streamed or not)."""
    tokens_per_second: float = 0.0
    """Pace of generated tokens, streamed or not; 0 = as fast as possible."""
    default_completion_tokens: int = 24
    """Completion length when the request sets neither max_completion_tokens nor max_tokens."""
    api_key: str | None = None
    """When set, only ``Authorization: Bearer <api_key>`` is accepted on ``/v1``."""
    models: tuple[str, ...] = DEFAULT_MODELS
    rpm_limit: int = 0
    """Requests per sliding 60 s before 429s; 0 = unlimited."""

    def __post_init__(self) -> None:
        if self.ttft_ms < 0 or self.tokens_per_second < 0:
            raise ValueError("ttft_ms and tokens_per_second must be >= 0")
        if self.default_completion_tokens < 1:
            raise ValueError("default_completion_tokens must be >= 1")
        if self.rpm_limit < 0:
            raise ValueError("rpm_limit must be >= 0 (0 = unlimited)")
        if not self.models:
            raise ValueError("models must name at least one model")
