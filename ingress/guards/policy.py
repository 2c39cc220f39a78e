"""The policy for one call: the default merged with every matching override, compiled once
per (tenant, model) into sets and one topic regex, so a request pays a dict look-up."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from schemas.guards_config import ENTITIES, GuardPolicy, GuardSettings, merged

SEVERITY = {"allow": 0, "warn": 1, "redact": 2, "block": 3}
_CACHE_MAX = 4096


@dataclass(frozen=True, slots=True)
class Policy:
    rules: GuardPolicy
    counted: frozenset[str]
    """Entity types recorded in the verdict (any action but allow)."""
    redacted: frozenset[str]
    """Replaced by placeholders before the provider sees them (redact, and block)."""
    blocked: frozenset[str]
    topics: re.Pattern[str] | None
    """Blocked terms (whole words, any case) and patterns, as one alternation."""

    @property
    def output_filters(self) -> bool:
        """The answer must be rewritten or may be stopped: streams hold back text."""
        out = self.rules.output
        return self.rules.reversible or out.pii in ("redact", "block") or self.topics is not None

    @classmethod
    def compile(cls, rules: GuardPolicy) -> Policy:
        actions = {e: rules.action_for(e) for e in ENTITIES}
        out = rules.output
        parts = [rf"\b{re.escape(term)}\b" for term in out.blocked_terms if term.strip()]
        parts += [f"(?:{p})" for p in out.blocked_patterns]
        return cls(
            rules,
            frozenset(e for e, a in actions.items() if a != "allow"),
            frozenset(e for e, a in actions.items() if a in ("redact", "block")),
            frozenset(e for e, a in actions.items() if a == "block"),
            re.compile("|".join(parts), re.IGNORECASE) if parts else None,
        )


class PolicyBook:
    def __init__(self, settings: GuardSettings) -> None:
        self.settings = settings
        self._default = settings.default()
        self._cache: dict[tuple[str, str], Policy | None] = {}

    def for_call(self, tenant: str, model: str) -> Policy | None:
        """None when guards are off for this call."""
        key = (tenant, model)
        if key in self._cache:
            return self._cache[key]
        rules = self._default
        for override in self.settings.overrides:
            match = override.match
            if match.tenant is not None and match.tenant != tenant:
                continue
            if match.model is not None and not fnmatch.fnmatchcase(model, match.model):
                continue
            rules = merged(rules, override)
        policy = Policy.compile(rules) if rules.enabled else None
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = policy
        return policy
