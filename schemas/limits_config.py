"""Config sections for spend and traffic control: budgets, rate limits, admission, alerts.

A *budget* caps spend (USD) and/or tokens per subject and period; a *rate limit* caps
requests and tokens per minute and requests in flight. Both apply per *subject*: the
value of one attribute of a request (its key, user, team, tenant, org, model or
deployment). ``match: "*"`` gives every subject its own meter ("each key $10 a day");
a name gives one subject its meter ("tenant acme $500 a month").

The processors meter usage against these rules and publish the state; the ingress admits
or refuses from its in-memory copy (``admission``). Alerts go to the alerts topic and the
webhooks listed here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, model_validator

Scope = Literal["key", "user", "team", "tenant", "org", "model", "deployment", "experiment"]
Period = Literal["hourly", "daily", "weekly", "monthly", "custom"]
_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetSettings(_Strict):
    name: str = Field(pattern=_NAME, description="unique; names the meter in state and alerts")
    scope: Scope
    match: str = Field("*", min_length=1, description="one subject, or `*` for each")
    max_usd: Decimal | None = Field(None, gt=0)
    max_tokens: int | None = Field(None, gt=0)
    period: Period = "monthly"
    period_s: int | None = Field(None, ge=1, description="length of a `custom` period")
    anchor: datetime = Field(
        datetime(1970, 1, 1, tzinfo=UTC),
        description="custom periods start here and repeat every period_s; calendar periods "
        "reset at 00:00 UTC (hourly: each hour; weekly: Monday)",
    )
    thresholds: tuple[float, ...] = Field(
        (0.5, 0.8, 0.9, 0.95), description="fractions of the limit that raise an alert once"
    )
    enforcement: Literal["hard", "soft"] = Field(
        "hard", description="hard: refuse past the limit; soft: alert only"
    )
    burst: float = Field(0.0, ge=0, le=1, description="fraction admitted past the limit")

    @model_validator(mode="after")
    def _complete(self) -> BudgetSettings:
        if self.max_usd is None and self.max_tokens is None:
            raise ValueError("set `max_usd`, `max_tokens` or both")
        if (self.period == "custom") != (self.period_s is not None):
            raise ValueError("`period_s` goes with `period: custom`, and only with it")
        if self.anchor.tzinfo is None:
            raise ValueError("`anchor` needs a time zone, e.g. 2026-01-01T00:00:00Z")
        if any(not 0 < t <= 1 for t in self.thresholds):
            raise ValueError("thresholds are fractions of the limit in (0, 1]")
        return self


class RateLimitSettings(_Strict):
    name: str = Field(pattern=_NAME)
    scope: Scope
    match: str = Field("*", min_length=1)
    requests_per_minute: int | None = Field(None, gt=0)
    tokens_per_minute: int | None = Field(None, gt=0)
    concurrent: int | None = Field(None, gt=0, description="requests in flight at once")

    @model_validator(mode="after")
    def _complete(self) -> RateLimitSettings:
        if (self.requests_per_minute, self.tokens_per_minute, self.concurrent) == (None,) * 3:
            raise ValueError("set `requests_per_minute`, `tokens_per_minute` or `concurrent`")
        return self


class AdmissionSettings(_Strict):
    """How each ingress replica decides from its copy of the processors' state."""

    max_state_age_s: float = Field(
        10.0, gt=0, description="older than this (processors silent) the view is stale"
    )
    when_stale: Literal["open", "closed"] = Field(
        "open", description="admit (open) or refuse with 503 (closed) on a stale view"
    )
    default_max_tokens: int = Field(
        1024, ge=1, description="output tokens assumed when a request sets no max_tokens"
    )
    publish_interval_ms: int = Field(
        50, ge=5, le=5000, description="how often the processors publish changed state"
    )
    share_wait_s: float = Field(
        1.0,
        ge=0,
        le=30,
        description="how long a request refused only for this replica's share of what is "
        "left (its latest admissions not counted yet) waits for the state before its 429; "
        "0 answers at once",
    )


class WebhookSettings(_Strict):
    url: HttpUrl
    kinds: tuple[str, ...] = Field((), description="alert kinds to deliver; empty = all")
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    timeout_s: float = Field(5.0, gt=0)
    max_attempts: int = Field(5, ge=1, le=20)


class SpendSpikeSettings(_Strict):
    """Spend in the last ``window_s`` above ``factor`` times the trailing rate, per tenant."""

    factor: float = Field(3.0, gt=1)
    window_s: int = Field(300, ge=60)
    trailing_s: int = Field(3600, ge=120)
    min_usd: Decimal = Field(Decimal("1"), ge=0, description="ignore spikes smaller than this")

    @model_validator(mode="after")
    def _window_inside_trailing(self) -> SpendSpikeSettings:
        if self.trailing_s <= self.window_s:
            raise ValueError("`trailing_s` must be longer than `window_s`")
        return self


class ProviderHealthSettings(_Strict):
    """Per provider, over one-minute windows."""

    max_error_rate: float = Field(0.2, gt=0, le=1)
    max_latency_p95_ms: float = Field(30_000, gt=0)
    min_requests: int = Field(20, ge=1, description="windows with fewer requests are ignored")


class AlertSettings(_Strict):
    webhooks: tuple[WebhookSettings, ...] = ()
    spend_spike: SpendSpikeSettings | None = SpendSpikeSettings()
    provider_health: ProviderHealthSettings | None = ProviderHealthSettings()
