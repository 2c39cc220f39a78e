"""Config sections for where requests go: providers, deployments, routing and resilience.

A *provider* is an account at a vendor (endpoint and credentials). A *deployment* serves a
public model name through one provider, as some upstream model, with a weight and a
concurrency cap. *Routing* maps what the caller asked for (aliases, rules) to deployments and
chooses among them; *resilience* says how long to wait, when to retry and when to stop
calling a failing deployment.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

ProviderKind = Literal[
    "openai", "azure", "anthropic", "gemini", "bedrock", "mistral", "cohere", "openai_compatible"
]
Strategy = Literal["weighted", "round_robin", "least_latency", "cost", "least_tokens"]

DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "mistral": "https://api.mistral.ai/v1",
    "cohere": "https://api.cohere.com",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Strict):
    """Four clocks: connecting, the first byte of the answer, silence mid-stream, the whole call."""

    connect_s: float = Field(5.0, gt=0)
    first_token_s: float = Field(60.0, gt=0)
    idle_s: float = Field(30.0, gt=0)
    total_s: float = Field(600.0, gt=0)


class ProviderSettings(_Strict):
    kind: ProviderKind
    base_url: str | None = Field(None, description="default: the vendor's public endpoint")
    api_key: SecretStr | None = None
    api_version: str | None = Field(None, description="Azure api-version, anthropic-version")
    region: str | None = Field(None, description="AWS region (Bedrock)")
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    timeouts: Timeouts | None = Field(None, description="default: resilience.timeouts")
    max_connections: int = Field(256, ge=1)
    ca_cert: Path | None = Field(
        None,
        description="PEM file of the CAs to trust for this provider's https endpoint (a "
        "self-hosted server with an internal CA); default: the system's",
    )

    proxy: SecretStr | None = Field(
        None,
        description="http://[user:password@]host[:port] of an HTTP proxy every call to this "
        "provider goes through (CONNECT tunnels for https); default: none",
    )

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, proxy: SecretStr | None) -> SecretStr | None:
        if proxy is None:
            return None
        try:
            parts = urlsplit(proxy.get_secret_value())
            parts.port  # noqa: B018  # raises on a port that is not a number
        except ValueError:
            parts = None
        if (
            parts is None
            or parts.scheme != "http"
            or not parts.hostname
            or parts.path not in ("", "/")
        ):
            # the value itself is not repeated: it may hold the proxy's password
            raise ValueError("a proxy is an http://[user:password@]host[:port] URL")
        return proxy

    @field_validator("ca_cert")
    @classmethod
    def _ca_cert_readable(cls, path: Path | None) -> Path | None:
        if path is None:
            return None
        if not path.is_file():
            raise ValueError(f"no file at {path}: give the PEM file of the CA(s) to trust")
        try:
            ssl.create_default_context(cafile=str(path))
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"{path} holds no usable CA certificate ({exc}): give a PEM file of "
                "'-----BEGIN CERTIFICATE-----' blocks"
            ) from None
        return path

    @model_validator(mode="after")
    def _endpoint_known(self) -> ProviderSettings:
        if self.base_url is None and self.kind not in DEFAULT_BASE_URLS and self.kind != "bedrock":
            raise ValueError(f"provider kind `{self.kind}` needs `base_url`")
        if self.kind == "bedrock" and not self.region and not self.base_url:
            raise ValueError("a `bedrock` provider needs `region` (or `base_url`)")
        return self

    def endpoint(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.kind == "bedrock":
            return f"https://bedrock-runtime.{self.region}.amazonaws.com"
        return DEFAULT_BASE_URLS[self.kind]


class DeploymentSettings(_Strict):
    model: str = Field(min_length=1, description="public model name; `*` serves any name")
    provider: str = Field(min_length=1)
    upstream_model: str | None = Field(None, description="default: the name the caller used")
    name: str | None = Field(None, description="default: <provider>/<upstream_model or model>")
    weight: float = Field(1.0, gt=0)
    region: str | None = None
    max_concurrency: int = Field(256, ge=1, description="bulkhead: requests in flight")
    queue_limit: int = Field(256, ge=0, description="bulkhead: requests waiting for a slot")
    queue_timeout_s: float = Field(5.0, gt=0)
    health_check: bool = Field(False, description="probe it in the background")

    @property
    def id(self) -> str:
        return self.name or f"{self.provider}/{self.upstream_model or self.model}"


class RuleMatch(_Strict):
    model: str | None = None
    model_prefix: str | None = None
    tenant: str | None = None
    header: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)


class RouteRule(_Strict):
    """First matching rule wins: it may rename the model, pick the strategy, or pin deployments."""

    match: RuleMatch
    model: str | None = None
    strategy: Strategy | None = None
    deployments: tuple[str, ...] = ()


class SplitMatch(_Strict):
    """Which requests a live split takes: all set fields must match (none set = all)."""

    model: str | None = None
    tenant: str | None = None


class SplitVariant(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    model: str | None = Field(None, description="default: the model the caller asked for")
    deployments: tuple[str, ...] = Field((), description="pin these deployments (ids)")
    weight: float = Field(1.0, gt=0)


class SplitExperiment(_Strict):
    """A live A/B split: matching traffic is divided between variants by weight, each
    user (or key) always getting the same one; ``holdout`` of them stay on the normal route,
    tagged variant ``holdout``."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    match: SplitMatch = SplitMatch()
    variants: tuple[SplitVariant, ...] = Field(min_length=1)
    holdout: float = Field(0.0, ge=0, lt=1)
    sticky: Literal["user", "key"] = Field(
        "user", description="user: the body's `user` (else the key's user, else the key)"
    )

    @model_validator(mode="after")
    def _names_unique(self) -> SplitExperiment:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names) or "holdout" in names:
            raise ValueError("variant names must be unique and not `holdout`")
        return self


class RoutingSettings(_Strict):
    strategy: Strategy = "weighted"
    aliases: dict[str, str] = Field(default_factory=dict)
    fallbacks: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="model → models to try when all its deployments fail"
    )
    rules: tuple[RouteRule, ...] = ()
    experiments: tuple[SplitExperiment, ...] = Field(
        (), description="live splits; the first matching experiment takes the request"
    )
    health_check_interval_s: float = Field(30.0, gt=0)
    ewma_alpha: float = Field(0.3, gt=0, le=1)


class RetrySettings(_Strict):
    attempts: int = Field(2, ge=0, description="retries after the first try")
    backoff_initial_s: float = Field(0.2, ge=0)
    backoff_max_s: float = Field(5.0, ge=0)
    max_retry_after_s: float = Field(30.0, ge=0, description="longer Retry-After: fail over")


class BreakerSettings(_Strict):
    failure_threshold: int = Field(5, ge=1, description="consecutive failures that open it")
    cooldown_s: float = Field(30.0, gt=0, description="open → half-open after this")
    half_open_probes: int = Field(1, ge=1)


class ResilienceSettings(_Strict):
    timeouts: Timeouts = Timeouts()
    retries: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()
