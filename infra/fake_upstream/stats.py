"""What the fake upstream served: the reference the gateway's books are checked against.

Tokens count only completed answers (a stream counts once its [DONE] is sent), and count the
same whether or not the response carried usage: it is what the upstream served.
Shape of ``GET /_fake/stats``::

    {"requests": 12, "statuses": {"200": 10, "429": 2}, "disconnects": 0, "hangs": 0,
     "models": {"gpt-4o": {"requests": 10, "prompt_tokens": 90, "completion_tokens": 240}},
     "embeddings": {"text-embedding-3-small": {"requests": 1, "prompt_tokens": 4}},
     "providers": {"openai": {"requests": 11, "prompt_tokens": 94, "completion_tokens": 240}}}

``models`` is keyed by what the request targeted upstream: the model id, the Azure deployment
or the Bedrock model id. ``providers`` sums chat and embedding calls per wire format.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class Served:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(slots=True)
class Embedded:
    requests: int = 0
    prompt_tokens: int = 0


@dataclass
class Stats:
    statuses: Counter[int] = field(default_factory=Counter)
    models: defaultdict[str, Served] = field(default_factory=lambda: defaultdict(Served))
    embeddings: defaultdict[str, Embedded] = field(default_factory=lambda: defaultdict(Embedded))
    providers: defaultdict[str, Served] = field(default_factory=lambda: defaultdict(Served))
    disconnects: int = 0
    hangs: int = 0

    def answered(self, status: int) -> None:
        self.statuses[status] += 1

    def completed(
        self, model: str, prompt_tokens: int, completion_tokens: int, provider: str = "openai"
    ) -> None:
        for entry in (self.models[model], self.providers[provider]):
            entry.requests += 1
            entry.prompt_tokens += prompt_tokens
            entry.completion_tokens += completion_tokens

    def embedded(self, model: str, prompt_tokens: int, provider: str = "openai") -> None:
        entry = self.embeddings[model]
        entry.requests += 1
        entry.prompt_tokens += prompt_tokens
        total = self.providers[provider]
        total.requests += 1
        total.prompt_tokens += prompt_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": sum(self.statuses.values()),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "disconnects": self.disconnects,
            "hangs": self.hangs,
            "models": {m: asdict(s) for m, s in sorted(self.models.items())},
            "embeddings": {m: asdict(s) for m, s in sorted(self.embeddings.items())},
            "providers": {p: asdict(s) for p, s in sorted(self.providers.items())},
        }

    def reset(self) -> None:
        self.statuses.clear()
        self.models.clear()
        self.embeddings.clear()
        self.providers.clear()
        self.disconnects = 0
        self.hangs = 0
