"""KeyStore without Kafka: static keys, a registry, both headers, expiry, model scopes."""

from __future__ import annotations

import time

import pytest

from ingress.auth import KeyStore, Principal
from ingress.errors import AuthenticationError
from schemas.config import KeySettings, hash_key


class FakeRegistry:
    def __init__(self, **keys: Principal) -> None:
        self.keys = {hash_key(k): p for k, p in keys.items()}

    def lookup(self, digest: str) -> Principal | None:
        return self.keys.get(digest)


STATIC = KeySettings.model_validate(
    {"key": "tg-static", "tenant": "acme", "team": "qa", "org": "o1", "models": ["gpt-4o"]}
)


def test_static_key_by_bearer_or_x_api_key() -> None:
    store = KeyStore((STATIC,))
    who = store.authenticate("Bearer tg-static")
    assert (who.tenant, who.team, who.org, who.key_id) == ("acme", "qa", "o1", STATIC.digest[:16])
    assert store.authenticate(None, "tg-static") == who
    assert store.authenticate_headers({"x-api-key": "tg-static"}) == who
    assert who.may_use("gpt-4o") and not who.may_use("gpt-4o-mini")
    assert Principal("t", "k").may_use("anything")  # no models listed: all


@pytest.mark.parametrize(
    ("authorization", "api_key", "message"),
    [
        (None, None, "missing API key"),
        ("Basic abc", None, "malformed Authorization"),
        ("Bearer ", None, "malformed Authorization"),
        ("Bearer tg-wrong", None, "incorrect API key"),
        (None, "tg-wrong", "incorrect API key"),
    ],
)
def test_bad_credentials_are_401(authorization: str, api_key: str, message: str) -> None:
    with pytest.raises(AuthenticationError, match=message) as info:
        KeyStore((STATIC,), FakeRegistry()).authenticate(authorization, api_key)
    assert info.value.status == 401
    assert info.value.body()["error"]["code"] == "invalid_api_key"


def test_registry_keys_and_config_wins_on_conflict() -> None:
    dynamic = Principal("beta", "k-dyn")
    shadow = Principal("intruder", "k-shadow")
    store = KeyStore((STATIC,), FakeRegistry(**{"tg-dyn": dynamic, "tg-static": shadow}))
    assert store.authenticate("Bearer tg-dyn") == dynamic
    assert store.authenticate("Bearer tg-static").tenant == "acme"


def test_expired_key_is_401() -> None:
    past = int(time.time() * 1000) - 1
    future = past + 3_600_000
    store = KeyStore(
        (),
        FakeRegistry(
            **{
                "tg-old": Principal("t", "old", expires_at=past),
                "tg-new": Principal("t", "new", expires_at=future),
            }
        ),
    )
    with pytest.raises(AuthenticationError, match="expired"):
        store.authenticate("Bearer tg-old")
    assert store.authenticate("Bearer tg-new").key_id == "new"
