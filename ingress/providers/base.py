"""The contract every provider adapter fulfils; the rest of the ingress sees only this.

Inside the gateway a chat request, response and stream chunk are OpenAI-shaped dicts (the
*canonical* form: what clients send and expect back). An adapter is pure translation, with
no I/O: it turns a canonical request into the HTTP call its vendor expects, and the vendor's
answer, stream or error back into canonical form. The transport (``ingress.transport``) does
the sending, so adapters are tested without sockets and against the fake upstream alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas.routing_config import ProviderSettings

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One HTTP request to a provider, fully built (and signed, when the vendor wants that)."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class Failure:
    """A provider's error answer, read in its own format."""

    status: int
    message: str
    type: str = "upstream_error"
    retry_after_s: float | None = None

    @property
    def retryable(self) -> bool:
        """Worth another try (same or another deployment): throttling, overload, 5xx."""
        return self.status in (408, 409, 429) or self.status >= 500


class StreamDecoder(Protocol):
    """Turns the bytes of a provider's stream into canonical ``chat.completion.chunk`` dicts.

    ``feed`` may get any slice of the stream (half an event, several events); it returns the
    chunks completed so far. A chunk with ``choices == []`` and ``usage`` carries the usage.
    ``error`` is set when the provider sent an error event mid-stream.
    """

    error: Failure | None

    def feed(self, data: bytes) -> list[Json]: ...

    def close(self) -> list[Json]: ...


class Adapter(Protocol):
    kind: str

    def chat_call(self, body: Json, upstream_model: str, stream: bool) -> UpstreamCall: ...

    def chat_result(self, payload: bytes, public_model: str) -> Json:
        """The vendor's success body as an OpenAI ``chat.completion`` dict."""
        ...

    def stream_decoder(self, public_model: str) -> StreamDecoder: ...

    def failure(self, status: int, payload: bytes, headers: Mapping[str, str]) -> Failure: ...

    def embeddings_call(self, body: Json, upstream_model: str) -> UpstreamCall: ...

    def embeddings_result(self, payload: bytes, public_model: str, request: Json) -> Json:
        """The vendor's embeddings as OpenAI's list; ``request`` is the canonical body asked
        (some answers need it: encoding, token estimates)."""
        ...

    def health_call(self) -> UpstreamCall | None:
        """A cheap request that proves the endpoint is up (None: use a tiny chat call)."""
        ...


class UnsupportedError(Exception):
    """The vendor has no equivalent for what was asked (e.g. embeddings on Anthropic)."""


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds (delta form; the HTTP-date form is rare for APIs), or the
    ``retry-after-ms`` header OpenAI also sends."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    return None


def bearer_headers(settings: ProviderSettings) -> dict[str, str]:
    """JSON content type, the provider's extra headers, and its key as a Bearer token."""
    headers = {"content-type": "application/json", **settings.headers}
    key = settings_secret(settings, "api_key")
    if key:
        headers["authorization"] = f"Bearer {key}"
    return headers


def settings_secret(settings: ProviderSettings, name: str) -> str | None:
    secret = getattr(settings, name)
    return secret.get_secret_value() if secret is not None else None
