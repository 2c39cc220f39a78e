"""The contract every provider adapter fulfils; the rest of the ingress sees only this.

An adapter owns its wire format, credentials and error mapping: it takes an OpenAI-shaped
chat request and returns an OpenAI-shaped result (or raises a ``GatewayError``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ChatResult:
    """What the provider answered, already in OpenAI's wire shape."""

    status: int
    body: bytes
    """The response body to return to the client as-is."""
    parsed: dict[str, Any] | None
    """The decoded body when it was a JSON object (for events), else None."""
    headers: dict[str, str] = field(default_factory=dict)
    """Headers worth passing through (Retry-After, rate-limit headers)."""


class Provider(Protocol):
    name: str

    async def chat(self, body: dict[str, Any], request_id: str) -> ChatResult: ...

    async def close(self) -> None: ...
