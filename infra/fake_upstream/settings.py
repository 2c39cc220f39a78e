"""How the fake upstream behaves unless a request's ``x-fake-*`` headers say otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

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


# The other providers' model ids, as fnmatch patterns: a typo'd id is a 404, as upstream.
ANTHROPIC_MODELS = ("claude-*",)
GEMINI_MODELS = ("gemini-*", "text-embedding-*", "embedding-*", "gemma-*")
BEDROCK_MODELS = (
    "anthropic.*", "amazon.*", "meta.*", "mistral.*", "cohere.*", "ai21.*", "deepseek.*",
    "us.*", "eu.*", "apac.*", "global.*", "arn:aws:bedrock:*",
)  # fmt: skip
COHERE_MODELS = ("command*", "c4ai-*", "embed-*")
MISTRAL_MODELS = (
    "mistral-*", "open-mistral-*", "open-mixtral-*", "ministral-*", "codestral-*",
    "pixtral-*", "magistral-*", "devstral-*",
)  # fmt: skip


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
    anthropic_models: tuple[str, ...] = ANTHROPIC_MODELS
    gemini_models: tuple[str, ...] = GEMINI_MODELS
    bedrock_models: tuple[str, ...] = BEDROCK_MODELS
    cohere_models: tuple[str, ...] = COHERE_MODELS
    mistral_models: tuple[str, ...] = MISTRAL_MODELS
    azure_deployments: tuple[str, ...] = ("*",)
    """Azure deployment names (patterns); others are Azure's ``DeploymentNotFound``."""
    aws_access_key_id: str = "AKIDFAKE"
    aws_secret_access_key: str = "fake-secret"
    aws_region: str = "us-east-1"
    """Bedrock requests must carry a SigV4 signature made with these, for service bedrock."""

    def __post_init__(self) -> None:
        if self.ttft_ms < 0 or self.tokens_per_second < 0:
            raise ValueError("ttft_ms and tokens_per_second must be >= 0")
        if self.default_completion_tokens < 1:
            raise ValueError("default_completion_tokens must be >= 1")
        if self.rpm_limit < 0:
            raise ValueError("rpm_limit must be >= 0 (0 = unlimited)")
        if not self.models:
            raise ValueError("models must name at least one model")


def known(model: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``model`` matches one of a provider's model patterns."""
    return any(fnmatchcase(model, pattern) for pattern in patterns)
