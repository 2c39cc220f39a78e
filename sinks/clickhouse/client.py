"""Opens ClickHouse: embedded chDB at a data path by default, a server when a URL is set.

Both are clickhouse-connect clients, so the DDL and the queries are the same. chDB runs the
engine in this process and only one process may own a data path; other processes query it
through the sink's query endpoint (``sinks.query_server``).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from schemas.config import TollgateConfig


class ClickHouseUnavailableError(RuntimeError):
    """ClickHouse could not be opened; the message says which and how to fix it."""


def open_client(config: TollgateConfig) -> Client:
    settings = config.clickhouse
    try:
        if settings.url:
            return _server_client(settings.url)
        path = config.chdb_path
        path.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(interface="chdb", path=str(path))
    except Exception as exc:
        where = _redacted(settings.url) if settings.url else f"chDB at {config.chdb_path}"
        raise ClickHouseUnavailableError(
            f"cannot open ClickHouse ({where}): {exc}. For chDB, make sure no other process "
            "owns the data path (stop it with `tollgate down`); for a server, check the URL."
        ) from exc


def _server_client(url: str) -> Client:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    return clickhouse_connect.get_client(
        host=parts.hostname or "localhost",
        port=parts.port or (8443 if secure else 8123),
        username=unquote(parts.username or "default"),
        password=unquote(parts.password or ""),
        secure=secure,
    )


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"


def ensure_database(client: Client, database: str) -> None:
    """Create the database and make it the default, so ad-hoc SQL needs no prefix."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.database = database
