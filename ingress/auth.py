"""Gateway API keys → who is calling. Keys are compared by sha256; the key is never kept."""

from __future__ import annotations

from dataclasses import dataclass

from ingress.errors import AuthenticationError
from schemas.config import KeySettings, hash_key


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    key_id: str
    """First 16 hex digits of the key's sha256: enough to tell keys apart in logs and SQL."""
    team: str | None = None
    user: str | None = None


class KeyStore:
    def __init__(self, keys: tuple[KeySettings, ...]) -> None:
        self._by_digest = {
            k.digest: Principal(k.tenant, k.digest[:16], k.team, k.user) for k in keys
        }

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthenticationError(
                "missing API key: send `Authorization: Bearer <your Tollgate key>`"
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("malformed Authorization header: use `Bearer <key>`")
        principal = self._by_digest.get(hash_key(token.strip()))
        if principal is None:
            raise AuthenticationError(
                "incorrect API key provided; ask your Tollgate admin for a valid key"
            )
        return principal
