"""``GET /v1/models``: the models this key may call (configured names and aliases)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ingress.errors import ModelNotFoundError
from ingress.gateway import Gateway, request_id_of

CREATED = 1_700_000_000  # OpenAI's schema wants a creation time; ours is not meaningful


def _model(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": CREATED, "owned_by": "tollgate"}


class ModelsService:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    def _visible(self, request: Request) -> list[str]:
        request.state.request_id = request_id_of(request.headers)
        who = self.gw.keys.authenticate_headers(request.headers)
        names = self.gw.runtime.router.public_models()
        return [n for n in names if who.may_use(n)]

    async def list(self, request: Request) -> Response:
        data = [_model(name) for name in self._visible(request)]
        body = orjson.dumps({"object": "list", "data": data})
        return Response(body, 200, {"x-request-id": request.state.request_id}, "application/json")

    async def get(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self._visible(request):
            raise ModelNotFoundError(
                f"the model `{name}` does not exist or you do not have access to it"
            )
        body = orjson.dumps(_model(name))
        return Response(body, 200, {"x-request-id": request.state.request_id}, "application/json")
