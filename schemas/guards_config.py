"""Guardrail policies: what the inline guard does with PII, secrets, injections and outputs.

A default policy applies to every call; ``overrides`` refine it for a tenant, a model name
pattern (glob), or both. Every override that matches is applied in order, and only the keys
an override spells out change anything (``entities`` merge key by key), so a tenant rule
and a route rule compose. The ingress resolves one policy per (tenant, model) and caches it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Action = Literal["allow", "warn", "redact", "block"]
"""allow: pass and do not count; warn: pass and record; redact: placeholders upstream;
block: refuse the request (400) without calling the provider."""
BodyKept = Literal["full", "redacted", "none"]
Entity = Literal["EMAIL", "PHONE", "SSN", "CREDIT_CARD", "IBAN", "IP_ADDRESS", "SECRET"]
ENTITIES: tuple[Entity, ...] = (
    "EMAIL",
    "PHONE",
    "SSN",
    "CREDIT_CARD",
    "IBAN",
    "IP_ADDRESS",
    "SECRET",
)

DEFAULT_ENTITIES: dict[Entity, Action] = {"SECRET": "redact"}
"""Credentials never go to a provider by default; PII follows ``default_action`` (warn)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InjectionPolicy(_Strict):
    threshold: float = Field(0.7, ge=0, le=1, description="scores at or above it act")
    action: Literal["allow", "warn", "block"] = "warn"


class OutputPolicy(_Strict):
    """Checks on what the provider answers (JSON and streams)."""

    pii: Literal["allow", "warn", "redact", "block"] = "warn"
    blocked_terms: tuple[str, ...] = Field((), description="case-insensitive whole words")
    blocked_patterns: tuple[str, ...] = Field((), description="Python regexes")
    topic_action: Literal["redact", "block"] = "block"
    hold_back_chars: int = Field(
        64, ge=8, le=4096, description="a stream holds back at most this many characters"
    )

    @field_validator("blocked_patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"blocked pattern {pattern!r} is not a regex: {exc}") from exc
        return patterns


class GuardPolicy(_Strict):
    enabled: bool = True
    default_action: Action = Field("warn", description="for entity types not in `entities`")
    entities: dict[Entity, Action] = Field(default_factory=lambda: dict(DEFAULT_ENTITIES))
    injection: InjectionPolicy = InjectionPolicy()
    reversible: bool = Field(False, description="restore placeholders in the answer")
    body: BodyKept = Field("full", description="what the audit log keeps of the request")
    output: OutputPolicy = OutputPolicy()

    @field_validator("entities", mode="before")
    @classmethod
    def _over_defaults(cls, given: Any) -> Any:
        """Naming one type keeps the others' defaults (secrets stay redacted); an override
        is a patch, so it carries only what it names."""
        if cls is GuardOverride or not isinstance(given, dict):
            return given
        return {**DEFAULT_ENTITIES, **given}

    def action_for(self, entity: str) -> Action:
        return self.entities.get(entity, self.default_action)  # type: ignore[call-overload,no-any-return]


class GuardMatch(_Strict):
    tenant: str | None = None
    model: str | None = Field(None, description="public model name, glob (`gpt-4o*`)")


class GuardOverride(GuardPolicy):
    """A partial policy: only the keys given here (``model_fields_set``) override."""

    match: GuardMatch


LEAK_ENTITIES: tuple[str, ...] = (
    *ENTITIES,
    "US_BANK_NUMBER",
    "US_PASSPORT",
    "US_ITIN",
    "US_DRIVER_LICENSE",
    "UK_NHS",
    "MEDICAL_LICENSE",
    "CRYPTO",
)
"""Types that make an answer a leak (inline names; Presidio's own names for the rest)."""


class StreamAnalysis(_Strict):
    """Presidio in the processors (``processors/guards``): slower and broader than the
    inline guard, off the request path, its verdicts on ``tollgate.verdicts``."""

    enabled: bool = True
    max_chars: int = Field(
        20_000, ge=1_000, le=1_000_000, description="of each event's text; the rest is skipped"
    )
    min_score: float = Field(0.4, ge=0, le=1, description="Presidio findings below are dropped")
    cpu_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="the guard worker's CPU priority below the rest (0 = equal): on shared "
        "cores its Presidio backlog waits, not the admission path",
    )


class Escalation(_Strict):
    """Repeated injection attempts or leaks by one key within ``window_s`` block (or
    throttle) that key at admission for ``block_s``, and raise ``guard.key_blocked``."""

    window_s: int = Field(600, ge=10, le=7 * 86_400)
    max_injection_attempts: int = Field(5, ge=1, description="the key escalates at this many")
    max_leaks: int = Field(3, ge=1, description="answers with PII or secrets, at this many")
    injection_score: float = Field(0.7, ge=0, le=1, description="an attempt scores at least")
    leak_min_score: float = Field(0.5, ge=0, le=1, description="a Presidio finding counts")
    leak_entities: tuple[str, ...] = LEAK_ENTITIES
    action: Literal["block", "throttle"] = "block"
    block_s: int = Field(900, ge=1, le=30 * 86_400)
    throttle_rpm: int = Field(10, ge=1, description="requests/min while throttled")


class GuardSettings(GuardPolicy):
    overrides: tuple[GuardOverride, ...] = ()
    analysis: StreamAnalysis = StreamAnalysis()
    escalation: Escalation | None = Field(None, description="unset = keys are never blocked")

    def default(self) -> GuardPolicy:
        stream_only = {"overrides", "analysis", "escalation"}
        return GuardPolicy.model_validate(self.model_dump(exclude=stream_only))


def merged(base: GuardPolicy, patch: BaseModel) -> GuardPolicy:
    """``base`` with the keys ``patch`` set explicitly (nested models merged the same way)."""
    return GuardPolicy.model_validate(_merge(base.model_dump(), patch))


def _merge(base: dict[str, Any], patch: BaseModel) -> dict[str, Any]:
    out = dict(base)
    for name in patch.model_fields_set:
        if name == "match" or name not in out:
            continue
        value = getattr(patch, name)
        if isinstance(value, BaseModel):
            out[name] = _merge(out[name], value)
        elif isinstance(value, dict):
            out[name] = {**out[name], **value}
        else:
            out[name] = value
    return out
