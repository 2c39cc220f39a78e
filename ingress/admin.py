"""The key-management API: ``/admin/keys`` to create, list, show and revoke gateway keys.

Every call needs ``Authorization: Bearer <admin key>``, compared by sha256 with
``admin.api_key`` / ``admin.api_key_sha256`` (none configured: 403; wrong: 401).

Writes go straight to ``tollgate.keys`` with an ``acks=all`` producer, not through the
best-effort event spool: a key that Kafka has not stored is not created, and the call
answers 503. A created key is returned once (only its sha256 is stored); before answering,
the call waits (bounded) until this replica's registry has applied the record, so the
caller's next request authenticates here. Other replicas apply it within their poll lag.
If Kafka stored the key but the wait times out, the call still answers 201: failing it
would lose the one copy of the secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    error_response,
)
from ingress.key_registry import KeyRegistry
from schemas.config import hash_key
from schemas.events import KeyRevoked, KeyUpserted, new_event_id
from schemas.topics import KEYS

log = logging.getLogger("tollgate.ingress.admin")
Handler = Callable[[Request], Awaitable[Response]]


class KeyStoreUnavailableError(GatewayError):
    """Kafka did not store the key change (or the registry is still loading): retry."""

    status = 503
    type = "service_unavailable"
    code = "key_store_unavailable"


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(min_length=1)
    team: str | None = None
    user: str | None = None
    org: str | None = None
    models: list[str] = Field(default_factory=list, description="empty = every model")
    name: str = ""
    expires_at: datetime | None = Field(None, description="ISO 8601 or unix seconds")


def _view(key: KeyUpserted) -> dict[str, Any]:
    """What the API shows of a key: never the key, never its hash beyond key_id."""
    return {
        "object": "gateway_key",
        "key_id": key.key_id,
        "name": key.name,
        "tenant": key.tenant,
        "team": key.team,
        "user": key.user,
        "org": key.org,
        "models": key.models,
        "created_at": key.created_at // 1000,
        "expires_at": key.expires_at // 1000 if key.expires_at is not None else None,
    }


def _json(body: Any, status: int = 200, request_id: str = "") -> Response:
    return Response(orjson.dumps(body), status, {"x-request-id": request_id}, "application/json")


class KeyAdmin:
    def __init__(
        self,
        bootstrap_servers: str,
        registry: KeyRegistry,
        admin_digest: Callable[[], str | None],
        *,
        topic: str = KEYS.name,
        apply_wait_s: float = 5.0,
        send_timeout_s: float = 10.0,
    ) -> None:
        """``admin_digest`` returns the configured admin key's sha256 (read per call, so a
        config reload takes effect), or None when no admin key is set."""
        self.bootstrap_servers = bootstrap_servers
        self.registry = registry
        self.admin_digest = admin_digest
        self.topic = topic
        self.apply_wait_s = apply_wait_s
        self.send_timeout_s = send_timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await producer.stop()

    # -- handlers -------------------------------------------------------------------------

    async def create(self, request: Request, rid: str) -> Response:
        body = await self._parse(request)
        expires_at = None
        if body.expires_at is not None:
            when = body.expires_at
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            if when <= datetime.now(UTC):
                raise InvalidRequestError("expires_at is in the past", param="expires_at")
            expires_at = int(when.timestamp() * 1000)
        key = "tg-" + secrets.token_urlsafe(32)
        digest = hash_key(key)
        event = KeyUpserted(
            request_id=rid,
            tenant=body.tenant,
            key_id=digest[:16],
            key_sha256=digest,
            team=body.team,
            user=body.user,
            org=body.org,
            models=body.models,
            name=body.name,
            expires_at=expires_at,
        )
        await self._store(event)
        log.info("key %s created for tenant %s (%s)", event.key_id, event.tenant, event.name)
        return _json({**_view(event), "key": key}, 201, rid)

    async def list(self, request: Request, rid: str) -> Response:
        self._require_loaded()
        data = [_view(k) for k in self.registry.all_keys()]
        return _json({"object": "list", "data": data}, request_id=rid)

    async def get(self, request: Request, rid: str) -> Response:
        return _json(_view(self._find(request)), request_id=rid)

    async def revoke(self, request: Request, rid: str) -> Response:
        key = self._find(request)
        await self._store(KeyRevoked(request_id=rid, tenant=key.tenant, key_id=key.key_id))
        log.info("key %s of tenant %s revoked", key.key_id, key.tenant)
        body = {"object": "gateway_key.deleted", "key_id": key.key_id, "deleted": True}
        return _json(body, request_id=rid)

    # -- helpers --------------------------------------------------------------------------

    def guarded(self, handler: Callable[[Request, str], Awaitable[Response]]) -> Handler:
        """Admin credential first; every error in OpenAI's shape."""

        async def endpoint(request: Request) -> Response:
            rid = request.headers.get("x-request-id") or new_event_id()
            try:
                self._authorize(request)
                return await handler(request, rid)
            except GatewayError as exc:
                return error_response(exc, rid)

        return endpoint

    def _authorize(self, request: Request) -> None:
        digest = self.admin_digest()
        if digest is None:
            raise PermissionDeniedError(
                "the admin API is disabled: set `admin.api_key` (or `admin.api_key_sha256`) "
                "in the config, or the TOLLGATE__ADMIN__API_KEY environment variable",
                code="admin_disabled",
            )
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("missing admin key: send `Authorization: Bearer <admin key>`")
        if not hmac.compare_digest(hash_key(token.strip()), digest):
            raise AuthenticationError("incorrect admin key")

    async def _parse(self, request: Request) -> KeyCreate:
        try:
            return KeyCreate.model_validate(orjson.loads(await request.body()))
        except orjson.JSONDecodeError as exc:
            raise InvalidRequestError(f"the body is not JSON: {exc}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or None
            raise InvalidRequestError(f"{where or 'body'}: {first['msg']}", param=where) from None

    def _require_loaded(self) -> None:
        if not self.registry.caught_up.is_set():
            raise KeyStoreUnavailableError("the key registry is still loading; retry shortly")

    def _find(self, request: Request) -> KeyUpserted:
        self._require_loaded()
        key_id = request.path_params["key_id"]
        key = self.registry.get(key_id)
        if key is None:
            raise NotFoundError(f"no gateway key {key_id!r} (revoked, or never created here)")
        return key

    async def _store(self, event: KeyUpserted | KeyRevoked) -> None:
        """Durably on the topic (acks=all), then applied by this replica (bounded wait)."""
        try:
            producer = await self._ensure_producer()
            async with asyncio.timeout(self.send_timeout_s):
                sent = await producer.send_and_wait(
                    self.topic, event.encode(), key=event.key_id.encode()
                )
        except Exception as exc:
            log.error("key change %s %s not stored: %s", event.TYPE, event.key_id, exc)
            await self.close()  # a fresh producer next time
            raise KeyStoreUnavailableError(
                f"the key store (Kafka) did not confirm the change ({type(exc).__name__}); "
                "nothing was changed, retry later"
            ) from None
        if not await self.registry.wait_applied(sent.offset, self.apply_wait_s):
            log.warning(
                "%s %s stored at offset %d but not applied here within %.0f s",
                event.TYPE,
                event.key_id,
                sent.offset,
                self.apply_wait_s,
            )

    async def _ensure_producer(self) -> AIOKafkaProducer:
        async with self._producer_lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    acks="all",
                    enable_idempotence=True,
                    request_timeout_ms=int(self.send_timeout_s * 1000),
                )
                try:
                    async with asyncio.timeout(self.send_timeout_s):
                        await producer.start()
                except BaseException:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise
                self._producer = producer
            return self._producer


def admin_routes(admin: KeyAdmin) -> list[Route]:
    """Mount on the ingress app; the caller closes ``admin`` at shutdown."""
    return [
        Route("/admin/keys", admin.guarded(admin.create), methods=["POST"]),
        Route("/admin/keys", admin.guarded(admin.list), methods=["GET"]),
        Route("/admin/keys/{key_id}", admin.guarded(admin.get), methods=["GET"]),
        Route("/admin/keys/{key_id}", admin.guarded(admin.revoke), methods=["DELETE"]),
    ]
