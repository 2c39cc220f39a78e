"""``POST /v1/embeddings`` through the same routing, retries and events as chat."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ingress import exchange
from ingress.errors import GatewayError
from ingress.gateway import Gateway
from ingress.routing.router import Target
from ingress.validation import check_embeddings_request

ENDPOINT = "/v1/embeddings"


class EmbeddingsService:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def handle(self, request: Request) -> Response:
        call, body = await self.gw.open(request, ENDPOINT)
        try:
            texts = check_embeddings_request(body)
            model = body["model"]
            targets = await self.gw.route(call, model, body)
            body = await self.gw.received(call, model, False, body)  # as the guards allow

            async def attempt(t: Target) -> dict[str, Any]:
                p = t.deployment.provider
                return await exchange.embeddings(
                    p.adapter, p.transport, body, t.upstream_model, t.public_model
                )

            answer, target, attempts = await call.runtime.dispatcher.run(
                targets, attempt, sum(len(t) for t in texts) // 4
            )
            self.gw.completed(
                call, target, attempts, outputs=[], finish_reason=None, usage=answer.get("usage")
            )
            headers = call.response_headers(target, len(attempts))
            return Response(orjson.dumps(answer), 200, headers, "application/json")
        except GatewayError as exc:
            self.gw.failed(call, exc)
            raise
        finally:
            call.done()
