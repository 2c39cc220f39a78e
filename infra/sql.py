"""``tollgate sql``: read-only queries, through whichever process owns ClickHouse.

With embedded chDB the running sink owns the data path, so the query goes to its query
endpoint. When no sink runs, this process opens chDB itself, runs the query and closes it.
With a ClickHouse server URL, the server is asked directly.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import orjson

from schemas.config import TollgateConfig


class QueryError(RuntimeError):
    pass


def run_sql(
    config: TollgateConfig, sql: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``params`` fill ClickHouse query parameters such as ``{tenant:String}``."""
    if config.clickhouse.url:
        return _direct(config, sql, params)
    url = f"http://{config.sink.query_host}:{config.sink.query_port}/query"
    request = urllib.request.Request(
        url,
        data=orjson.dumps({"sql": sql, "params": params or {}}),
        method="POST",
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return dict(orjson.loads(response.read()))
    except urllib.error.HTTPError as exc:
        error = orjson.loads(exc.read()).get("error", {})
        raise QueryError(error.get("message", str(exc))) from exc
    except urllib.error.URLError as exc:
        if not isinstance(exc.reason, ConnectionRefusedError):
            raise QueryError(f"cannot reach the sink's query endpoint {url}: {exc.reason}") from exc
    return _direct(config, sql, params)


def _direct(
    config: TollgateConfig, sql: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    from sinks.clickhouse.client import ensure_database, open_client
    from sinks.query_server import run_query

    client = open_client(config)
    try:
        ensure_database(client, config.clickhouse.database)
        return orjson.loads(orjson.dumps(run_query(client, sql, params), default=str))
    except Exception as exc:
        raise QueryError(str(exc)) from exc
    finally:
        client.close()
