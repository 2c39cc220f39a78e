"""``POST /v1/chat/completions``: authenticate, validate, publish, forward, publish, answer.

Order of one request:
1. request id: ``X-Request-ID`` if the client sent a sane one, else a new uuid7;
2. authenticate the gateway key (401);
3. read the body within the size limit (413) and validate it (400);
4. publish ``request.received`` (queued; the client never waits on Kafka);
5. call the provider (502 unreachable, 504 timeout);
6. publish ``response.completed`` or ``response.failed``;
7. return the provider's body as-is, with ``X-Request-ID``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ingress.auth import KeyStore, Principal
from ingress.errors import GatewayError, InvalidRequestError, PayloadTooLargeError
from ingress.providers.base import ChatResult, Provider
from ingress.publisher import EventPublisher
from ingress.validation import check_chat_request, parse_json_object
from schemas.events import RequestReceived, ResponseCompleted, ResponseFailed, new_event_id
from schemas.topics import REQUESTS

ENDPOINT = "/v1/chat/completions"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(request: Request) -> str:
    given = request.headers.get("x-request-id")
    return given if given and _REQUEST_ID.match(given) else new_event_id()


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"request body of {declared} bytes exceeds the {limit}-byte limit"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _outputs(parsed: dict[str, Any]) -> tuple[list[str], str | None]:
    texts: list[str] = []
    finish = None
    for choice in parsed.get("choices") or ():
        message = choice.get("message") or {}
        content = message.get("content")
        texts.append(content if isinstance(content, str) else "")
        finish = finish or choice.get("finish_reason")
    return texts, finish


def _error_of(result: ChatResult) -> tuple[str, str]:
    error = (result.parsed or {}).get("error")
    if isinstance(error, dict):
        return str(error.get("type") or "upstream_error"), str(error.get("message") or "")
    return "upstream_error", f"HTTP {result.status}"


class ChatService:
    def __init__(
        self, keys: KeyStore, provider: Provider, publisher: EventPublisher, max_body_bytes: int
    ) -> None:
        self.keys = keys
        self.provider = provider
        self.publisher = publisher
        self.max_body_bytes = max_body_bytes

    async def handle(self, request: Request) -> Response:
        rid = request.state.request_id = request_id_of(request)
        who = self.keys.authenticate(request.headers.get("authorization"))
        body = parse_json_object(await read_body(request, self.max_body_bytes))
        check_chat_request(body)
        if body.get("stream"):
            raise InvalidRequestError(
                "streaming is not enabled on this gateway yet; send `stream: false`", param="stream"
            )
        model = body["model"]
        self.publisher.publish(
            REQUESTS.name,
            RequestReceived(
                request_id=rid,
                tenant=who.tenant,
                key_id=who.key_id,
                endpoint=ENDPOINT,
                model=model,
                stream=False,
                body=body,
            ),
        )
        started = time.perf_counter()
        try:
            result = await self.provider.chat(body, rid)
        except GatewayError as exc:
            self._failed(
                rid,
                who,
                model,
                started,
                status=exc.status,
                error_type=exc.type,
                message=exc.message,
            )
            raise
        if result.status == 200 and result.parsed is not None:
            outputs, finish = _outputs(result.parsed)
            self.publisher.publish(
                REQUESTS.name,
                ResponseCompleted(
                    request_id=rid,
                    tenant=who.tenant,
                    key_id=who.key_id,
                    provider=self.provider.name,
                    model=str(result.parsed.get("model") or model),
                    status=200,
                    latency_ms=_ms_since(started),
                    outputs=outputs,
                    finish_reason=finish,
                    usage=result.parsed.get("usage"),
                ),
            )
        else:
            error_type, message = _error_of(result)
            self._failed(
                rid,
                who,
                model,
                started,
                status=result.status,
                error_type=error_type,
                message=message,
            )
        headers = {**result.headers, "x-request-id": rid}
        return Response(result.body, result.status, headers, "application/json")

    def _failed(
        self,
        rid: str,
        who: Principal,
        model: str,
        started: float,
        *,
        status: int,
        error_type: str,
        message: str,
    ) -> None:
        self.publisher.publish(
            REQUESTS.name,
            ResponseFailed(
                request_id=rid,
                tenant=who.tenant,
                key_id=who.key_id,
                provider=self.provider.name,
                model=model,
                status=status,
                latency_ms=_ms_since(started),
                error_type=error_type,
                error_message=message[:2000],
            ),
        )


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
