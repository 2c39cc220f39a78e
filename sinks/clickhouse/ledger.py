"""The sink's batch ledger in ClickHouse: offsets live with the data.

A batch's plan (its Kafka offset ranges and the duplicate records it leaves out) is written
before its rows, and a ``done`` mark after them. After a crash, a plan without its mark is
re-sent from the same records with the same insert tokens, so ClickHouse drops every block
that already landed and writes only the missing ones (materialized views included). The
done marks say where each partition continues, even when the Kafka commit was lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.client import Client

Position = tuple[str, int]
"""(topic, partition)"""


@dataclass(frozen=True, slots=True)
class Plan:
    token: str
    ranges: tuple[tuple[str, int, int, int], ...]
    """(topic, partition, first offset, last offset), both ends included."""
    skipped: frozenset[tuple[str, int, int]] = frozenset()
    """(topic, partition, offset) of records whose event ClickHouse already holds."""

    def touches(self, positions: set[Position]) -> bool:
        return any((topic, partition) in positions for topic, partition, _, _ in self.ranges)


class Ledger:
    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.table = f"{database}.sink_batches"

    def plan(self, plan: Plan) -> None:
        self._write(plan, "planned")

    def done(self, plan: Plan) -> None:
        self._write(plan, "done")

    def _write(self, plan: Plan, state: str) -> None:
        row = [datetime.now(UTC), plan.token, state, list(plan.ranges), sorted(plan.skipped)]
        self.client.insert(
            self.table, [row], column_names=["ts", "token", "state", "ranges", "skipped"]
        )

    def unfinished(self) -> list[Plan]:
        """Plans without a done mark, oldest first."""
        result = self.client.query(
            f"SELECT token, any(ranges), any(skipped) FROM {self.table} GROUP BY token "
            "HAVING max(state) = 'planned' ORDER BY min(ts)"
        )
        return [
            Plan(
                token=token,
                ranges=tuple(
                    (str(t), int(p), int(a), int(b)) for t, p, a, b in map(_tuple, ranges)
                ),
                skipped=frozenset((str(t), int(p), int(o)) for t, p, o in map(_tuple, skipped)),
            )
            for token, ranges, skipped in result.result_rows
        ]

    def next_offsets(self) -> dict[Position, int]:
        """Per partition, the offset after the last record of a finished batch."""
        result = self.client.query(
            f"SELECT r.1, r.2, max(r.4) + 1 FROM {self.table} ARRAY JOIN ranges AS r "
            "WHERE state = 'done' GROUP BY r.1, r.2"
        )
        return {(str(t), int(p)): int(o) for t, p, o in result.result_rows}


def _tuple(value: Any) -> tuple[Any, ...]:
    """A named Tuple comes back as a dict from clickhouse-connect, an unnamed one as a tuple."""
    return tuple(value.values()) if isinstance(value, dict) else tuple(value)


def stored_event_ids(client: Client, table: str, events: list[Any]) -> set[str]:
    """Which of these events (request-log or usage rows) the table already holds.

    The look-up follows each table's sort key: usage by (tenant, request_id), the request
    log by (tenant, ts) and event id, so it reads a few granules, not the table.
    """
    if not events:
        return set()
    tenants = sorted({e.tenant for e in events})
    if table.endswith(".usage"):
        sql = (
            f"SELECT toString(event_id) FROM {table} WHERE tenant IN {{tenants:Array(String)}} "
            "AND request_id IN {keys:Array(String)}"
        )
        keys: list[Any] = sorted({e.request_id for e in events})
        result = client.query(sql, parameters={"tenants": tenants, "keys": keys})
        # a recomputed usage event has the same id; another id for the request is not ours
        return {str(row[0]) for row in result.result_rows}
    sql = (
        f"SELECT toString(event_id) FROM {table} WHERE tenant IN {{tenants:Array(String)}} "
        "AND ts BETWEEN fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
        "AND fromUnixTimestamp64Milli({hi:Int64}, 'UTC') AND event_id IN {keys:Array(UUID)}"
    )
    keys = sorted({str(UUID(e.id)) for e in events})
    result = client.query(
        sql,
        parameters={
            "tenants": tenants,
            "lo": min(e.ts for e in events),
            "hi": max(e.ts for e in events),
            "keys": keys,
        },
    )
    return {str(row[0]) for row in result.result_rows}
