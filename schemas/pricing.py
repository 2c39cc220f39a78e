"""Prices per model and the cost of a request, in exact decimals.

Money is Decimal end to end (events carry it as a string, ClickHouse as Decimal128), so a
sum over a million requests equals the sum of their prices to the last digit.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from typing import Any

import yaml

from schemas.events import Usage

PER_TOKENS = Decimal(1_000_000)
EPOCH = date(1970, 1, 1)
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


@dataclass(frozen=True, slots=True)
class Price:
    """USD (or ``currency``) per 1M tokens for models matching ``model`` from a date on."""

    model: str
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    currency: str = "USD"
    effective_from: date = EPOCH
    audio_input: Decimal | None = None
    audio_output: Decimal | None = None
    image_input: Decimal | None = None
    """Rates for those parts of the prompt and completion; unset = the text rate."""
    deployment: str | None = None
    """Only for calls served by this deployment (``provider/upstream_model``): a negotiated
    rate or a fine-tune's hosting price beats the model's list price there."""

    @property
    def ref(self) -> str:
        where = f"[{self.deployment}]" if self.deployment else ""
        return f"{self.model}{where}@{self.effective_from.isoformat()}"

    @property
    def is_pattern(self) -> bool:
        return any(ch in self.model for ch in "*?[")

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> Price:
        effective = raw.get("effective_from") or EPOCH
        return cls(
            model=str(raw["model"]),
            input=Decimal(str(raw["input"])),
            output=Decimal(str(raw["output"])),
            cached_input=_rate(raw.get("cached_input")),
            currency=str(raw.get("currency", "USD")),
            effective_from=effective
            if isinstance(effective, date)
            else date.fromisoformat(effective),
            audio_input=_rate(raw.get("audio_input")),
            audio_output=_rate(raw.get("audio_output")),
            image_input=_rate(raw.get("image_input")),
        )

    def cost(self, usage: Usage) -> Decimal:
        """Each part of the prompt and completion at its rate: cached, audio and image input,
        audio output; a part without a published rate costs the text rate."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        audio_in = min(usage.audio_prompt_tokens, usage.prompt_tokens - cached)
        image_in = min(usage.image_prompt_tokens, usage.prompt_tokens - cached - audio_in)
        text_in = usage.prompt_tokens - cached - audio_in - image_in
        audio_out = min(usage.audio_completion_tokens, usage.completion_tokens)
        total = (
            text_in * self.input
            + cached * _or(self.cached_input, self.input)
            + audio_in * _or(self.audio_input, self.input)
            + image_in * _or(self.image_input, self.input)
            + (usage.completion_tokens - audio_out) * self.output
            + audio_out * _or(self.audio_output, self.output)
        )
        return total / PER_TOKENS


def _rate(raw: Any) -> Decimal | None:
    return None if raw is None else Decimal(str(raw))


def _or(rate: Decimal | None, fallback: Decimal) -> Decimal:
    return fallback if rate is None else rate


class PriceBook:
    """Looks prices up by model and time: exact names beat patterns, longer patterns win."""

    def __init__(self, prices: list[Price]) -> None:
        self._exact: dict[str, list[Price]] = {}
        self._patterns: list[Price] = []
        self._deployments: dict[str, PriceBook] = {}
        scoped: dict[str, list[Price]] = {}
        for price in prices:
            if price.deployment:
                scoped.setdefault(price.deployment, []).append(price)
            elif price.is_pattern:
                self._patterns.append(price)
            else:
                self._exact.setdefault(price.model, []).append(price)
        for entries in self._exact.values():
            entries.sort(key=lambda p: p.effective_from, reverse=True)
        self._patterns.sort(key=lambda p: (len(p.model), p.effective_from), reverse=True)
        for deployment, entries in scoped.items():
            unscoped = [dataclasses.replace(p, deployment=None) for p in entries]
            self._deployments[deployment] = PriceBook(unscoped)

    def lookup(self, model: str, at_ms: int, deployment: str = "") -> Price | None:
        """The deployment's own prices first, then the exact name, the name without a date
        suffix (served models often carry one: ``gpt-4o-2024-08-06``), the longest
        matching pattern."""
        own = self._deployments.get(deployment) if deployment else None
        found = own.lookup(model, at_ms) if own is not None else None
        if found is not None:
            return dataclasses.replace(found, deployment=deployment)
        day = datetime.fromtimestamp(at_ms / 1000, tz=UTC).date()
        undated = _DATE_SUFFIX.sub("", model)
        for name in (model, undated):
            for price in self._exact.get(name, ()):
                if price.effective_from <= day:
                    return price
        for price in self._patterns:
            if price.effective_from <= day and fnmatch.fnmatchcase(model, price.model):
                return price
        return None


def load_catalog() -> list[Price]:
    text = resources.files("schemas").joinpath("pricing_catalog.yaml").read_text()
    return [Price.from_mapping(entry) for entry in yaml.safe_load(text)]


def build_price_book(overrides: list[Price]) -> PriceBook:
    """The shipped catalog with config entries on top (same model and date: config wins)."""
    merged = {(p.model, p.effective_from, p.deployment): p for p in load_catalog()}
    merged.update({(p.model, p.effective_from, p.deployment): p for p in overrides})
    return PriceBook(list(merged.values()))
