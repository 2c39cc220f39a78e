"""Opens ClickHouse: embedded chDB at a data path by default, a server when a URL is set.

Both are clickhouse-connect clients, so the DDL and the queries are the same. chDB runs the
engine in this process and only one process may own a data path; other processes query it
through the sink's query endpoint (``sinks.query_server``).

A server URL carries the user and password (``https://user:password@host:8443``, both
percent-encoded); ``https`` turns TLS on, checked against the system CAs unless
``clickhouse.ca_cert`` names a bundle (or ``certifi``) or ``clickhouse.verify`` is false.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from schemas.config import ClickHouseSettings, TollgateConfig

SESSION_SETTINGS = {
    "insert_deduplicate": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    "async_insert": 0,
}
"""For every client: block dedup for tables and their views (a re-sent batch with the same
insert token adds nothing anywhere), and synchronous inserts (async ones buffer and
deduplicate differently, and would hide a failed write from the sink)."""


class ClickHouseUnavailableError(RuntimeError):
    """ClickHouse could not be opened; the message says which and how to fix it."""


def open_client(config: TollgateConfig) -> Client:
    settings = config.clickhouse
    try:
        if settings.url:
            return _server_client(settings)
        path = config.chdb_path
        path.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(
            interface="chdb", path=str(path), settings=dict(SESSION_SETTINGS)
        )
    except Exception as exc:
        where = _redacted(settings.url) if settings.url else f"chDB at {config.chdb_path}"
        raise ClickHouseUnavailableError(
            f"cannot open ClickHouse ({where}): {exc}. For chDB, make sure no other process "
            "owns the data path (stop it with `tollgate down`); for a server, check the URL."
        ) from exc


def server_client_args(settings: ClickHouseSettings) -> dict[str, Any]:
    """clickhouse-connect arguments for a server URL (separate, so it is testable)."""
    parts = urlsplit(settings.url or "")
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"clickhouse.url must be http:// or https://, not {parts.scheme!r}")
    secure = parts.scheme == "https"
    args: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": parts.port or (8443 if secure else 8123),
        "username": unquote(parts.username or "default"),
        "password": unquote(parts.password or ""),
        "secure": secure,
        "settings": dict(SESSION_SETTINGS),
    }
    if secure:
        args["verify"] = settings.verify
        if settings.ca_cert is not None:
            args["ca_cert"] = str(settings.ca_cert)
    return args


def _server_client(settings: ClickHouseSettings) -> Client:
    return clickhouse_connect.get_client(**server_client_args(settings))


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"


def ensure_database(client: Client, database: str) -> None:
    """Create the database and make it the default, so ad-hoc SQL needs no prefix."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.database = database
