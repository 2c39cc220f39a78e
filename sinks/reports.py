"""The analytics queries behind ``tollgate cost|tokens|latency|top-spenders``, in one place.

Each function returns SQL with ClickHouse query parameters and their values, run through
the same read-only path as ``tollgate sql``. Cost and tokens read the rollups: the minute
table for windows up to two days, the hour table up to 60 days, the day table beyond; a
window starts at the start of its bucket (``--window 24h`` at 10:17:30 starts at 10:17:00
yesterday with minutes). The ready-made queries are ``sinks/queries/*.sql``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from typing import Any

_WINDOW = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
BY_USAGE = {"tenant": "tenant", "model": "model", "provider": "provider", "day": "toDate(bucket)"}
BY_LATENCY = {"provider": "provider", "model": "model", "tenant": "tenant"}
BY_SPENDER = {"key": "u.key_id", "user": "r.user", "team": "r.team", "tenant": "u.tenant"}

Query = tuple[str, dict[str, Any]]


class ReportError(ValueError):
    """Bad input to a report; the message says what is accepted."""


def parse_window(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d``, ``2w`` → a timedelta (a whole, positive number of units)."""
    match = _WINDOW.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise ReportError(
            f"window {text!r} is not a duration: use a whole positive number and a unit, "
            "m (minutes), h (hours), d (days) or w (weeks), e.g. 30m, 24h, 7d"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_percentiles(text: str) -> list[float]:
    """``50,95,99`` (or ``99.9``) → [50.0, 95.0, 99.0]; each strictly between 0 and 100."""
    levels = []
    for part in text.split(","):
        try:
            level = float(part.strip())
        except ValueError:
            level = -1.0
        if not 0 < level < 100:
            raise ReportError(
                f"percentile {part.strip()!r} must be a number between 0 and 100 (exclusive), "
                "as in --percentiles 50,95,99"
            )
        levels.append(level)
    return levels


@dataclass(frozen=True, slots=True)
class _Rollup:
    table: str
    floor: str


def _rollup(kind: str, window: timedelta) -> _Rollup:
    if window <= timedelta(days=2):
        return _Rollup(f"{kind}_minute", "toStartOfMinute")
    if window <= timedelta(days=60) or kind == "latency":
        return _Rollup(f"{kind}_hour", "toStartOfHour")
    return _Rollup(f"{kind}_day", "toStartOfDay")


def _where(rollup: _Rollup, window: timedelta, tenant: str | None) -> Query:
    sql = f"bucket >= {rollup.floor}(now('UTC') - toIntervalSecond({{seconds:UInt32}}))"
    params: dict[str, Any] = {"seconds": int(window.total_seconds())}
    if tenant:
        sql += " AND tenant = {tenant:String}"
        params["tenant"] = tenant
    return sql, params


def _dimension(by: str, choices: dict[str, str]) -> str:
    if by not in choices:
        raise ReportError(f"--by {by!r}: choose one of {', '.join(choices)}")
    return choices[by]


def _usage(by: str, window: timedelta, tenant: str | None, columns: str, order: str) -> Query:
    """One grouping of the usage rollup that fits ``window``: cost and tokens differ only
    in the columns they add up."""
    dim = _dimension(by, BY_USAGE)
    rollup = _rollup("usage", window)
    where, params = _where(rollup, window, tenant)
    return (
        f"SELECT {dim} AS {by}, sum(requests) AS requests, {columns} "
        f"FROM {rollup.table} WHERE {where} GROUP BY {by} ORDER BY {order} DESC, {by}",
        params,
    )


def cost(by: str, window: timedelta, tenant: str | None = None) -> Query:
    columns = (
        "sum(prompt_tokens + completion_tokens) AS tokens, sum(cost) AS cost_usd, "
        "cost_usd / requests AS usd_per_request, sum(cache_savings) AS cache_savings_usd"
    )
    return _usage(by, window, tenant, columns, "cost_usd")


def tokens(by: str, window: timedelta, tenant: str | None = None) -> Query:
    columns = (
        "sum(prompt_tokens) AS prompt, sum(completion_tokens) AS completion, "
        "sum(cached_tokens) AS cached, sum(reasoning_tokens) AS reasoning, "
        "sum(prompt_tokens + completion_tokens) AS total"
    )
    return _usage(by, window, tenant, columns, "total")


def latency(
    percentiles: list[float], by: str, window: timedelta, tenant: str | None = None
) -> Query:
    dim = _dimension(by, BY_LATENCY)
    rollup = _rollup("latency", window)
    where, params = _where(rollup, window, tenant)
    columns = ", ".join(
        f"round(quantileTDigestMerge({round(p / 100, 6)!r})(latency), 1) AS `p{p:g}_ms`"
        for p in percentiles
    )
    ttft = ", ".join(
        f"round(quantileTDigestMerge({round(p / 100, 6)!r})(ttft), 1) AS `ttft_p{p:g}_ms`"
        for p in percentiles
    )
    return (
        f"SELECT {dim} AS {by}, sum(responses) AS responses, sum(errors) AS errors, "
        f"round(errors / responses, 4) AS error_rate, {columns}, {ttft} "
        f"FROM {rollup.table} WHERE {where} GROUP BY {by} ORDER BY responses DESC, {by}",
        params,
    )


def top_spenders(by: str, window: timedelta, limit: int, tenant: str | None = None) -> Query:
    """From the deduplicated usage table; team and user come from the request's audit row
    (usage events carry the key, not the team or user)."""
    dim = _dimension(by, BY_SPENDER)
    if limit < 1:
        raise ReportError(f"--limit must be at least 1, got {limit}")
    params: dict[str, Any] = {"seconds": int(window.total_seconds()), "limit": limit}
    since = "now64(3, 'UTC') - toIntervalSecond({seconds:UInt32})"
    tenant_filter = ""
    if tenant:
        tenant_filter = " AND u.tenant = {tenant:String}"
        params["tenant"] = tenant
    join = ""
    if by in ("user", "team"):
        join = (
            "LEFT JOIN (SELECT tenant, request_id, any(team) AS team, any(user) AS user "
            f"FROM request_log WHERE type = 'request.received' AND ts >= {since} "
            "- toIntervalHour(1) GROUP BY tenant, request_id) AS r "
            "ON r.tenant = u.tenant AND r.request_id = u.request_id "
        )
    return (
        f"SELECT {dim} AS {by}, count() AS requests, sum(u.cost) AS cost_usd, "
        "sum(u.prompt_tokens + u.completion_tokens) AS tokens "
        f"FROM usage AS u FINAL {join}WHERE u.ts >= {since}{tenant_filter} "
        f"GROUP BY {by} ORDER BY cost_usd DESC, {by} LIMIT {{limit:UInt32}}",
        params,
    )


@dataclass(frozen=True, slots=True)
class ReadyQuery:
    name: str
    question: str
    params: tuple[str, ...]
    sql: str


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):[^}]+\}")


def ready_queries() -> dict[str, ReadyQuery]:
    """``sinks/queries/<name>.sql``; the first comment line is the question it answers."""
    found = {}
    for entry in sorted(resources.files("sinks").joinpath("queries").iterdir(), key=str):
        if not entry.name.endswith(".sql"):
            continue
        text = entry.read_text()
        comments = [line[2:].strip() for line in text.splitlines() if line.startswith("--")]
        body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
        name = entry.name.removesuffix(".sql")
        params = tuple(dict.fromkeys(_PARAM.findall(body)))
        found[name] = ReadyQuery(name, comments[0] if comments else "", params, body.strip())
    return found
