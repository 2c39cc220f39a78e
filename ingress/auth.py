"""Gateway API keys → who is calling. Keys are compared by sha256; the key is never kept.

Two sources, both in memory, so authenticating is one dict look-up and no I/O:
static keys from the config, and keys created through the admin API (the key registry,
``ingress.key_registry``, fed from the ``tollgate.keys`` topic). On a hash present in
both, the config wins: what an operator wrote in the config cannot be changed or revoked
through the API.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ingress.errors import AuthenticationError
from schemas.config import KeySettings, hash_key


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    key_id: str
    """First 16 hex digits of the key's sha256: enough to tell keys apart in logs and SQL."""
    team: str | None = None
    user: str | None = None
    org: str | None = None
    models: frozenset[str] = field(default_factory=frozenset)
    """Models this key may use; empty = all."""
    expires_at: int | None = None
    """Epoch ms after which the key stops working; None = never."""
    replay: bool = False
    """May tag its calls with an experiment and variant (``tollgate replay``)."""

    def may_use(self, model: str) -> bool:
        return not self.models or model in self.models

    @classmethod
    def from_settings(cls, key: KeySettings) -> Principal:
        digest = key.digest
        return cls(
            key.tenant,
            digest[:16],
            key.team,
            key.user,
            key.org,
            frozenset(key.models),
            replay=key.replay,
        )


class KeyLookup(Protocol):
    """Keys created at run time (the key registry): sha256 hex → who, or None."""

    def lookup(self, digest: str) -> Principal | None: ...


class KeyStore:
    def __init__(self, keys: tuple[KeySettings, ...], registry: KeyLookup | None = None) -> None:
        self._by_digest = {k.digest: Principal.from_settings(k) for k in keys}
        self.registry = registry

    def authenticate(self, authorization: str | None, api_key: str | None = None) -> Principal:
        """``Authorization: Bearer <key>`` (OpenAI SDKs), else ``x-api-key`` (Anthropic's)."""
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthenticationError("malformed Authorization header: use `Bearer <key>`")
            key = token.strip()
        elif api_key and api_key.strip():
            key = api_key.strip()
        else:
            raise AuthenticationError(
                "missing API key: send `Authorization: Bearer <your Tollgate key>`"
            )
        digest = hash_key(key)
        principal = self._by_digest.get(digest)
        if principal is None and self.registry is not None:
            principal = self.registry.lookup(digest)
        if principal is None:
            raise AuthenticationError(
                "incorrect API key provided; ask your Tollgate admin for a valid key"
            )
        if principal.expires_at is not None and time.time() * 1000 >= principal.expires_at:
            raise AuthenticationError(
                f"the API key {principal.key_id} has expired; ask your Tollgate admin for a new one"
            )
        return principal

    def authenticate_headers(self, headers: Mapping[str, str]) -> Principal:
        """The same, from a request's headers (lower-case names, as Starlette gives them)."""
        return self.authenticate(headers.get("authorization"), headers.get("x-api-key"))
