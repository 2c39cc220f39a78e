"""Gateway keys through the admin API, on the real broker's compacted topic."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.kafka.broker import LocalKafka
from ingress.admin import KeyAdmin, admin_routes
from ingress.auth import KeyStore
from ingress.errors import GatewayError, error_response
from ingress.key_registry import KeyRegistry
from schemas.config import KeySettings, hash_key
from schemas.events import KeyUpserted
from schemas.topics import KEYS
from tests.harness import free_port

pytestmark = pytest.mark.integration
ADMIN_KEY = "tg-admin-secret"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
STATIC = KeySettings.model_validate({"key": "tg-static-key", "tenant": "static-tenant"})


def build_app(admin: KeyAdmin, keys: KeyStore) -> Starlette:
    """The admin routes plus one authenticated endpoint that says who is calling."""

    async def whoami(request: Request) -> Response:
        try:
            who = keys.authenticate_headers(request.headers)
        except GatewayError as exc:
            return error_response(exc)
        return Response(orjson.dumps({**asdict(who), "models": sorted(who.models)}))

    return Starlette(routes=[*admin_routes(admin), Route("/whoami", whoami)])


async def _started(bootstrap: str) -> KeyRegistry:
    registry = KeyRegistry(bootstrap)
    registry.start()
    await asyncio.wait_for(registry.caught_up.wait(), 60)
    return registry


@pytest.fixture
async def replica(kafka: LocalKafka) -> AsyncIterator[tuple[httpx.AsyncClient, KeyRegistry]]:
    registry = await _started(kafka.bootstrap_servers)
    admin = KeyAdmin(kafka.bootstrap_servers, registry, lambda: hash_key(ADMIN_KEY))
    app = build_app(admin, KeyStore((STATIC,), registry))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
        yield client, registry
    await admin.close()
    await registry.stop()


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def _create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/admin/keys", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_create_use_list_revoke(replica: tuple[httpx.AsyncClient, KeyRegistry]) -> None:
    client, _ = replica
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    created = await _create(
        client, tenant=tenant, team="search", user="ann", org="acme", models=["gpt-4o-mini"]
    )
    key, key_id = created["key"], created["key_id"]
    assert key.startswith("tg-") and len(key) > 40 and key_id == hash_key(key)[:16]

    # right away, on this replica, with either header
    for headers in ({"authorization": f"Bearer {key}"}, {"x-api-key": key}):
        who = (await client.get("/whoami", headers=headers)).json()
        assert (who["tenant"], who["team"], who["user"], who["org"], who["key_id"]) == (
            tenant,
            "search",
            "ann",
            "acme",
            key_id,
        )
        assert who["models"] == ["gpt-4o-mini"]

    listed = (await client.get("/admin/keys", headers=ADMIN)).json()["data"]
    mine = [k for k in listed if k["key_id"] == key_id]
    assert len(mine) == 1 and mine[0]["tenant"] == tenant
    assert "key" not in mine[0] and "key_sha256" not in mine[0]
    assert key not in str(listed) and hash_key(key) not in str(listed)
    shown = (await client.get(f"/admin/keys/{key_id}", headers=ADMIN)).json()
    assert shown == mine[0]

    revoked = await client.delete(f"/admin/keys/{key_id}", headers=ADMIN)
    assert revoked.status_code == 200 and revoked.json()["deleted"] is True
    refused = await client.get("/whoami", headers={"authorization": f"Bearer {key}"})
    assert _error(refused, 401)["code"] == "invalid_api_key"
    _error(await client.get(f"/admin/keys/{key_id}", headers=ADMIN), 404)
    _error(await client.delete(f"/admin/keys/{key_id}", headers=ADMIN), 404)


async def test_a_second_replica_reads_the_same_state(
    kafka: LocalKafka, replica: tuple[httpx.AsyncClient, KeyRegistry]
) -> None:
    client, first = replica
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    kept = await _create(client, tenant=tenant, name="kept", expires_at="2099-01-01T00:00:00Z")
    gone = await _create(client, tenant=tenant, name="gone")
    assert (await client.delete(f"/admin/keys/{gone['key_id']}", headers=ADMIN)).is_success

    second = await _started(kafka.bootstrap_servers)
    try:
        principal = second.lookup(hash_key(kept["key"]))
        assert principal is not None and principal.tenant == tenant
        assert principal.expires_at == 4070908800 * 1000
        assert second.lookup(hash_key(gone["key"])) is None
        assert [k.key_id for k in second.all_keys()] == [k.key_id for k in first.all_keys()]
    finally:
        await second.stop()


async def test_tombstones_revoke_and_bad_records_are_skipped(
    kafka: LocalKafka, replica: tuple[httpx.AsyncClient, KeyRegistry]
) -> None:
    client, registry = replica
    created = await _create(client, tenant=f"t-{uuid.uuid4().hex[:8]}")
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(KEYS.name, b"not an event", key=b"junk")
        sent = await producer.send_and_wait(KEYS.name, None, key=created["key_id"].encode())
    finally:
        await producer.stop()
    assert await registry.wait_applied(sent.offset, 10)
    assert registry.lookup(hash_key(created["key"])) is None
    _error(await client.get("/whoami", headers={"x-api-key": created["key"]}), 401)


async def test_static_keys_work_and_win(
    kafka: LocalKafka, replica: tuple[httpx.AsyncClient, KeyRegistry]
) -> None:
    client, registry = replica
    who = (await client.get("/whoami", headers={"authorization": "Bearer tg-static-key"})).json()
    assert who["tenant"] == "static-tenant"
    # a registry record with the same hash (not something the API can make) does not win
    shadow = KeyUpserted(
        request_id="r",
        tenant="intruder",
        key_id=STATIC.digest[:16],
        key_sha256=STATIC.digest,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    key = shadow.key_id.encode()
    try:
        sent = await producer.send_and_wait(KEYS.name, shadow.encode(), key=key)
        assert await registry.wait_applied(sent.offset, 10)
        assert registry.lookup(STATIC.digest) is not None
        who = (await client.get("/whoami", headers={"x-api-key": "tg-static-key"})).json()
        assert who["tenant"] == "static-tenant"
    finally:
        await producer.send_and_wait(KEYS.name, None, key=key)  # leave no shadow behind
        await producer.stop()


@pytest.mark.parametrize(
    ("digest", "headers", "status", "words"),
    [
        (lambda: None, ADMIN, 403, "admin.api_key"),
        (lambda: hash_key(ADMIN_KEY), {}, 401, "missing admin key"),
        (lambda: hash_key(ADMIN_KEY), {"authorization": "Bearer nope"}, 401, "incorrect"),
        (lambda: hash_key(ADMIN_KEY), {"x-api-key": ADMIN_KEY}, 401, "missing admin key"),
    ],
)
async def test_admin_credential(
    kafka: LocalKafka,
    digest: Callable[[], str | None],
    headers: dict[str, str],
    status: int,
    words: str,
) -> None:
    registry = KeyRegistry(kafka.bootstrap_servers)  # not started: auth comes first
    app = build_app(KeyAdmin(kafka.bootstrap_servers, registry, digest), KeyStore(()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        for call in (
            c.get("/admin/keys", headers=headers),
            c.post("/admin/keys", json={"tenant": "t"}, headers=headers),
            c.delete("/admin/keys/abc", headers=headers),
        ):
            assert words in _error(await call, status)["message"]


async def test_bad_bodies_are_400(replica: tuple[httpx.AsyncClient, KeyRegistry]) -> None:
    client, _ = replica
    for body, param in [
        ({}, "tenant"),
        ({"tenant": "t", "colour": "red"}, "colour"),
        ({"tenant": "t", "models": "gpt-4o"}, "models"),
        ({"tenant": "t", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ]:
        response = await client.post("/admin/keys", json=body, headers=ADMIN)
        assert _error(response, 400)["param"] == param
    response = await client.post("/admin/keys", content=b"{not json", headers=ADMIN)
    _error(response, 400)


async def test_kafka_down_fails_the_write_with_503(
    replica: tuple[httpx.AsyncClient, KeyRegistry],
) -> None:
    _, registry = replica
    dead = KeyAdmin(
        f"127.0.0.1:{free_port()}", registry, lambda: hash_key(ADMIN_KEY), send_timeout_s=3
    )
    app = build_app(dead, KeyStore(()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://d") as c:
        before = len(registry.all_keys())
        response = await c.post("/admin/keys", json={"tenant": "t"}, headers=ADMIN)
        error = _error(response, 503)
        assert error["code"] == "key_store_unavailable" and "key" not in response.json()
        assert len(registry.all_keys()) == before
    await dead.close()


async def test_a_missing_topic_is_reported_not_hung_on(kafka: LocalKafka) -> None:
    registry = KeyRegistry(kafka.bootstrap_servers, topic="tollgate.keys-missing")
    registry.start()
    try:
        for _ in range(100):
            if registry.last_error:
                break
            await asyncio.sleep(0.05)
        assert registry.last_error and "does not exist" in registry.last_error
        assert not registry.caught_up.is_set()
    finally:
        await registry.stop()
