"""Prices per model and the cost of a request, in exact decimals.

Money is Decimal end to end (events carry it as a string, ClickHouse as Decimal128), so a
sum over a million requests equals the sum of their prices to the last digit.
"""

from __future__ import annotations

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

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.effective_from.isoformat()}"

    @property
    def is_pattern(self) -> bool:
        return any(ch in self.model for ch in "*?[")

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> Price:
        cached = raw.get("cached_input")
        effective = raw.get("effective_from") or EPOCH
        return cls(
            model=str(raw["model"]),
            input=Decimal(str(raw["input"])),
            output=Decimal(str(raw["output"])),
            cached_input=None if cached is None else Decimal(str(cached)),
            currency=str(raw.get("currency", "USD")),
            effective_from=effective
            if isinstance(effective, date)
            else date.fromisoformat(effective),
        )

    def cost(self, usage: Usage) -> Decimal:
        """Cached prompt tokens at the cached rate (full rate when none is published)."""
        cached_rate = self.input if self.cached_input is None else self.cached_input
        uncached = max(usage.prompt_tokens - usage.cached_tokens, 0)
        total = (
            uncached * self.input
            + usage.cached_tokens * cached_rate
            + usage.completion_tokens * self.output
        )
        return total / PER_TOKENS


class PriceBook:
    """Looks prices up by model and time: exact names beat patterns, longer patterns win."""

    def __init__(self, prices: list[Price]) -> None:
        self._exact: dict[str, list[Price]] = {}
        self._patterns: list[Price] = []
        for price in prices:
            if price.is_pattern:
                self._patterns.append(price)
            else:
                self._exact.setdefault(price.model, []).append(price)
        for entries in self._exact.values():
            entries.sort(key=lambda p: p.effective_from, reverse=True)
        self._patterns.sort(key=lambda p: (len(p.model), p.effective_from), reverse=True)

    def lookup(self, model: str, at_ms: int) -> Price | None:
        """Exact name, then the name without a date suffix (served models often carry one:
        ``gpt-4o-2024-08-06``), then the longest matching pattern."""
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
    merged = {(p.model, p.effective_from): p for p in load_catalog()}
    merged.update({(p.model, p.effective_from): p for p in overrides})
    return PriceBook(list(merged.values()))
