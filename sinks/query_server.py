"""Read-only SQL over HTTP from the process that owns the embedded ClickHouse.

chDB allows one owner per data path, so ``tollgate sql`` asks the running sink instead of
opening the files itself. Only reading statements are accepted. (A per-query
``readonly=1`` setting is not used: clickhouse-connect's chDB backend restores settings
with ``SET``, which readonly mode forbids, leaving the session read-only for the writer.)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from concurrent.futures import Executor
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web
from clickhouse_connect.driver.client import Client
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

_READING = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.IGNORECASE)


class NotReadOnlyError(ValueError):
    pass


def check_read_only(sql: str) -> str:
    statement = sql.strip().rstrip(";").strip()
    if not _READING.match(statement):
        raise NotReadOnlyError(
            "only reading statements (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS) are "
            "accepted here; run schema changes with `tollgate migrate`"
        )
    if ";" in _strip_literals(statement):
        raise NotReadOnlyError("send one statement at a time")
    return statement


def _strip_literals(sql: str) -> str:
    return re.sub(r"'(?:[^'\\]|\\.)*'", "''", sql)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def run_query(client: Client, sql: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """``params`` fill ClickHouse query parameters (``{tenant:String}``) on the server side,
    so a value never becomes SQL."""
    result = client.query(check_read_only(sql), parameters=params or None)
    return {
        "columns": list(result.column_names),
        "types": [t.name for t in result.column_types],
        "rows": [list(row) for row in result.result_rows],
    }


def create_query_app(
    client: Client,
    executor: Executor,
    health: Callable[[], dict[str, Any]],
    registry: CollectorRegistry | None = None,
) -> web.Application:
    async def query(request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
            sql = body["sql"]
            params = body.get("params") or {}
            if not isinstance(sql, str):
                raise TypeError("`sql` must be a string")
            if not isinstance(params, dict):
                raise TypeError("`params` must be an object")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            return _error(
                400, f'send JSON {{"sql": "SELECT ..."}} ({exc})', "invalid_request_error"
            )
        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(executor, run_query, client, sql, params)
        except NotReadOnlyError as exc:
            return _error(403, str(exc), "permission_error")
        except Exception as exc:
            return _error(400, str(exc), "query_error")
        return web.Response(
            body=orjson.dumps(result, default=_json_default), content_type="application/json"
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps({"status": "ok", **health()}), content_type="application/json"
        )

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry) if registry is not None else b""
        return web.Response(body=body, headers={"content-type": CONTENT_TYPE_LATEST})

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/query", query)
    app.router.add_get("/health", healthz)
    app.router.add_get("/metrics", metrics)
    return app


def _error(status: int, message: str, kind: str) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
