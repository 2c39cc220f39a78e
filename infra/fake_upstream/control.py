"""The ``/_fake`` control routes: what was served, what was received, and scripted faults.

``GET /_fake/stats``            served tokens per model and provider (see ``stats``)
``POST /_fake/reset``           zero the stats, drop queued faults and recorded requests
``POST /_fake/faults``          queue a fault spec (see ``scripted``); 201 with the queue
``GET /_fake/faults``           the queued specs, with their remaining counts
``DELETE /_fake/faults``        drop every queued spec
``GET /_fake/last?provider=P``  the last request provider P received (any, without P):
                                method, path, query, headers, auth header names, JSON body
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.fake_upstream import scripted
from infra.fake_upstream.upstream import Upstream


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def routes(upstream: Upstream) -> list[Route]:
    async def stats(_: Request) -> Response:
        return _json(upstream.stats.to_dict())

    async def reset(_: Request) -> Response:
        upstream.stats.reset()
        upstream.scripted.clear()
        upstream.last.clear()
        return _json({"status": "reset"})

    async def add_fault(request: Request) -> Response:
        try:
            fault = scripted.parse(orjson.loads(await request.body()))
        except (orjson.JSONDecodeError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        upstream.scripted.add(fault)
        return _json({"queued": upstream.scripted.pending()}, 201)

    async def list_faults(_: Request) -> Response:
        return _json({"queued": upstream.scripted.pending()})

    async def clear_faults(_: Request) -> Response:
        upstream.scripted.clear()
        return _json({"queued": []})

    async def last(request: Request) -> Response:
        provider = request.query_params.get("provider")
        entry = upstream.last.get(provider)
        if entry is None:
            return _json({"error": f"no request received for provider {provider!r}"}, 404)
        return _json(entry)

    return [
        Route("/_fake/stats", stats, methods=["GET"]),
        Route("/_fake/reset", reset, methods=["POST"]),
        Route("/_fake/faults", add_fault, methods=["POST"]),
        Route("/_fake/faults", list_faults, methods=["GET"]),
        Route("/_fake/faults", clear_faults, methods=["DELETE"]),
        Route("/_fake/last", last, methods=["GET"]),
    ]
