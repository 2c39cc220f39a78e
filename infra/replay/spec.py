"""What an experiment is: its variants, what it replays, and its judge.

Saved beside the journal on the first run, so a resumed run replays the same selection to
the same variants (a different spec under the same name is an error, not a silent mix).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[A-Za-z0-9_.-]{1,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Variant(_Strict):
    name: str = Field(pattern=NAME)
    model: str | None = Field(None, description="default: the recorded request's model")
    params: dict[str, Any] = Field(
        default_factory=dict, description="merged into the body: temperature, max_tokens, ..."
    )
    system: str | None = Field(None, description="replaces (or adds) the system message")
    template: str | None = Field(
        None, description="rewrites the last user message; `{prompt}` is the recorded text"
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="sent along, e.g. for a routing rule to a deployment"
    )


class Judge(_Strict):
    model: str = Field(min_length=1)


class Selection(_Strict):
    """Which recorded requests: a time range (epoch ms) and optional filters."""

    since_ms: int
    until_ms: int
    tenant: str | None = None
    key: str | None = None
    model: str | None = None
    route: str | None = Field(None, description="the deployment that served it first")
    sample: float = Field(1.0, gt=0, le=1, description="a stable fraction by request id")
    source: str = Field("auto", pattern=r"^(auto|kafka|clickhouse)$")


class ExperimentSpec(_Strict):
    name: str = Field(pattern=NAME)
    variants: tuple[Variant, ...] = Field(min_length=1)
    selection: Selection
    judge: Judge | None = None
