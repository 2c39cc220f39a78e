"""Numbered migrations (``sinks/migrations/NNNN_name.sql``), each applied once, in order.

Applied versions are recorded in ``schema_migrations``; ``{db}`` in a file is the database.
Statements are split on ``;`` at line ends, so keep one statement per such terminator.
"""

from __future__ import annotations

import re
from importlib import resources

from clickhouse_connect.driver.client import Client

from sinks.clickhouse.client import ensure_database

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def available() -> list[tuple[int, str, str]]:
    folder = resources.files("sinks").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


def statements(sql: str, database: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    parts = re.split(r";\s*$", body, flags=re.MULTILINE)
    return [p.strip().replace("{db}", database) for p in parts if p.strip()]


def migrate(client: Client, database: str) -> list[str]:
    """Apply what is missing; returns the names applied now."""
    ensure_database(client, database)
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
        "ENGINE = MergeTree ORDER BY version"
    )
    done = {
        row[0]
        for row in client.query(f"SELECT version FROM {database}.schema_migrations").result_rows
    }
    applied = []
    for version, name, sql in available():
        if version in done:
            continue
        for statement in statements(sql, database):
            client.command(statement)
        client.insert(
            f"{database}.schema_migrations", [[version, name]], column_names=["version", "name"]
        )
        applied.append(name)
    return applied
