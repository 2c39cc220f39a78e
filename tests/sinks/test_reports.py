"""The analytics commands and every ready-made query, against chDB with known data in it.

Rows go in the way the sink writes them (RowBuilder, one INSERT per table), so the
materialized views fill the rollups the reports read.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any, TypedDict

import orjson
import pytest
from click.testing import CliRunner

from infra.cli import main
from infra.sql import run_sql
from schemas.config import TollgateConfig
from schemas.events import RequestReceived, ResponseCompleted, ResponseFailed, UsageRecorded
from schemas.pricing import load_catalog
from sinks.clickhouse.client import open_client
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.rows import COLUMNS, RowBuilder
from sinks.reports import ReportError, parse_percentiles, parse_window, ready_queries
from tests.harness import write_config

DAY_MS = 86_400_000
# (tenant, team, user, key, provider, model, prompt, completion, cached, cost, latency_ms)
CALLS = [
    ("acme", "search", "ann", "k1", "openai", "gpt-4o", 1000, 100, 400, "0.003500", 100.0),
    ("acme", "search", "bob", "k1", "openai", "gpt-4o", 2000, 200, 0, "0.007000", 200.0),
    ("acme", "ads", "cid", "k2", "anthropic", "claude-sonnet-4-5", 500, 50, 0, "0.002250", 300.0),
    ("beta", "", "", "k3", "openai", "gpt-4o", 100, 10, 0, "0.000350", 400.0),
]


class _Common(TypedDict):
    """The fields every event of a call shares."""

    request_id: str
    tenant: str
    key_id: str
    ts: int


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TollgateConfig, Path]]:
    home = tmp_path_factory.mktemp("reports")
    config, path = write_config(home, "127.0.0.1:1")
    now = int(time.time() * 1000)
    ts = max(now - 60_000, now - now % DAY_MS)  # within the last minute and today (UTC)
    builder = RowBuilder(30, load_catalog())
    tables: dict[str, list[list[Any]]] = defaultdict(list)
    for i, (tenant, team, user, key, provider, model, p, c, cached, cost, ms) in enumerate(CALLS):
        rid = f"r{i}"
        common: _Common = {"request_id": rid, "tenant": tenant, "key_id": key, "ts": ts}
        events: list[Any] = [
            RequestReceived(
                **common,
                model=model,
                endpoint="/v1/chat/completions",
                team=team or None,
                user=user or None,
                body={"messages": [{"role": "user", "content": "hi"}]},
                guard={"action": "redact" if i == 0 else "allow", "entities": {"EMAIL": 1}},
            ),
            ResponseCompleted(
                **common, provider=provider, model=model, status=200, latency_ms=ms, ttft_ms=ms / 2
            ),
            UsageRecorded(
                **common,
                provider=provider,
                model=model,
                prompt_tokens=p,
                completion_tokens=c,
                cached_tokens=cached,
                cost=cost,
                price_ref="gpt-4o@2024-10-01" if model == "gpt-4o" else "",
            ),
        ]
        for event in events:
            for table, row in builder.rows(event, event.encode()):
                tables[table].append(row)
    failed = ResponseFailed(
        request_id="r-fail",
        tenant="acme",
        key_id="k1",
        ts=ts,
        provider="anthropic",
        model="claude-sonnet-4-5",
        status=502,
        latency_ms=50.0,
        error_type="upstream_error",
        error_message="boom",
    )
    for table, row in builder.rows(failed, failed.encode()):
        tables[table].append(row)
    client = open_client(config)
    try:
        migrate(client, config.clickhouse.database)
        for table, rows in tables.items():
            client.insert(
                f"{config.clickhouse.database}.{table}", rows, column_names=list(COLUMNS[table])
            )
    finally:
        client.close()
    yield config, path


def _cli(path: Path, *args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, [*args, "--json", "--config", str(path)])
    assert result.exit_code == 0, result.output
    return list(orjson.loads(result.output))


def test_cost_by_tenant_model_provider_and_day(loaded: tuple[TollgateConfig, Path]) -> None:
    _, path = loaded
    by_tenant = _cli(path, "cost", "--by", "tenant", "--window", "24h")
    assert [(r["tenant"], r["requests"], Decimal(r["cost_usd"])) for r in by_tenant] == [
        ("acme", 3, Decimal("0.012750")),
        ("beta", 1, Decimal("0.000350")),
    ]
    assert Decimal(by_tenant[0]["cache_savings_usd"]) == Decimal(400) * Decimal("1.25") / 10**6
    by_model = _cli(path, "cost", "--by", "model", "--window", "7d", "--tenant", "acme")
    assert {r["model"]: Decimal(r["cost_usd"]) for r in by_model} == {
        "gpt-4o": Decimal("0.010500"),
        "claude-sonnet-4-5": Decimal("0.002250"),
    }
    by_provider = _cli(path, "cost", "--by", "provider", "--window", "90d")  # the day rollup
    assert {r["provider"]: r["requests"] for r in by_provider} == {"openai": 3, "anthropic": 1}
    by_day = _cli(path, "cost", "--by", "day", "--window", "2d")
    assert len(by_day) == 1 and Decimal(by_day[0]["cost_usd"]) == Decimal("0.013100")


def test_tokens_by_kind(loaded: tuple[TollgateConfig, Path]) -> None:
    rows = _cli(loaded[1], "tokens", "--by", "tenant", "--window", "30m")
    acme = rows[0]
    assert (acme["tenant"], acme["prompt"], acme["completion"], acme["cached"], acme["total"]) == (
        "acme",
        3500,
        350,
        400,
        3850,
    )


def test_latency_percentiles_and_error_rate(loaded: tuple[TollgateConfig, Path]) -> None:
    rows = _cli(loaded[1], "latency", "--percentiles", "50,99", "--by", "provider")
    by = {r["provider"]: r for r in rows}
    assert by["openai"]["responses"] == 3 and by["openai"]["errors"] == 0
    assert by["anthropic"]["errors"] == 1 and by["anthropic"]["error_rate"] == 0.5
    assert 100 <= by["openai"]["p50_ms"] <= 400 and by["openai"]["p99_ms"] >= 200
    assert by["openai"]["ttft_p50_ms"] == pytest.approx(by["openai"]["p50_ms"] / 2, rel=0.3)


def test_top_spenders_by_key_user_and_team(loaded: tuple[TollgateConfig, Path]) -> None:
    keys = _cli(loaded[1], "top-spenders", "--by", "key", "--limit", "2")
    assert [(r["key"], Decimal(r["cost_usd"])) for r in keys] == [
        ("k1", Decimal("0.010500")),
        ("k2", Decimal("0.002250")),
    ]
    users = _cli(loaded[1], "top-spenders", "--by", "user", "--limit", "1")
    assert [(r["user"], r["requests"]) for r in users] == [("bob", 1)]
    teams = _cli(loaded[1], "top-spenders", "--by", "team", "--tenant", "acme")
    assert [(r["team"], Decimal(r["cost_usd"])) for r in teams] == [
        ("search", Decimal("0.010500")),
        ("ads", Decimal("0.002250")),
    ]


def test_every_ready_made_query_answers_with_the_right_numbers(
    loaded: tuple[TollgateConfig, Path],
) -> None:
    config, _ = loaded
    params = {
        "budget_burn_down": {"tenant": "acme", "budget": "1"},
        "replay_report": {"experiment": "never-run"},
    }
    results = {}
    for name, query in ready_queries().items():
        assert query.question.endswith("?"), f"{name}: its first comment must be the question"
        result = run_sql(config, query.sql, params.get(name))
        results[name] = [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]
    assert set(results) == {
        "spend_by_tenant_today",
        "cost_per_request_by_model",
        "cache_savings",
        "budget_burn_down",
        "error_rate_by_provider",
        "latency_by_model",
        "guard_actions",
        "replay_report",
    }
    assert results["replay_report"] == []  # its numbers: tests/integration/test_replay.py
    spend = {r["tenant"]: Decimal(str(r["cost_usd"])) for r in results["spend_by_tenant_today"]}
    assert spend == {"acme": Decimal("0.012750"), "beta": Decimal("0.000350")}
    per_request = {
        r["model"]: Decimal(str(r["usd_per_request"])) for r in results["cost_per_request_by_model"]
    }
    # Decimal(38, 12) division truncates at the 12th digit
    assert per_request["gpt-4o"] == (Decimal("0.010850") / 3).quantize(Decimal("1e-12"), ROUND_DOWN)
    savings = results["cache_savings"]
    assert [(r["tenant"], r["cached_tokens"]) for r in savings] == [("acme", 400)]
    assert Decimal(str(savings[0]["saved_usd"])) == Decimal("0.0005")
    burn = results["budget_burn_down"]
    assert len(burn) == 1 and Decimal(str(burn[0]["left_usd"])) == Decimal("1") - Decimal(
        "0.012750"
    )
    errors = {
        r["provider"]: (r["responses"], r["errors"]) for r in results["error_rate_by_provider"]
    }
    assert errors == {"anthropic": (2, 1), "openai": (3, 0)}
    latency = {r["model"]: r["responses"] for r in results["latency_by_model"]}
    assert latency == {"gpt-4o": 3, "claude-sonnet-4-5": 2}
    guards = {(r["tenant"], r["action"]): r["verdicts"] for r in results["guard_actions"]}
    assert guards == {("acme", "redact"): 1, ("acme", "allow"): 2, ("beta", "allow"): 1}


def test_bodies_leave_the_audit_row_and_keep_their_own_ttl(
    loaded: tuple[TollgateConfig, Path],
) -> None:
    config, _ = loaded
    rows = run_sql(
        config,
        "SELECT countIf(event LIKE '%messages%'), (SELECT count() FROM bodies), "
        "(SELECT min(dateDiff('day', ts, expires)) FROM bodies) FROM request_log",
    )["rows"]
    assert [int(v) for v in rows[0]] == [0, 4, 30]


@pytest.mark.parametrize("text", ["", "24", "h", "0h", "-1d", "1.5h", "7 days", "3y"])
def test_bad_windows_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ReportError, match="m \\(minutes\\), h \\(hours\\)"):
        parse_window(text)


def test_windows_and_percentiles_parse() -> None:
    assert parse_window("30m").total_seconds() == 1800
    assert parse_window("24h").total_seconds() == 86400
    assert parse_window("7d").days == 7 and parse_window("2w").days == 14
    assert parse_percentiles("50, 95,99.9") == [50.0, 95.0, 99.9]
    with pytest.raises(ReportError, match="between 0 and 100"):
        parse_percentiles("50,100")


def test_a_bad_window_on_the_command_line_is_a_clear_error(
    loaded: tuple[TollgateConfig, Path],
) -> None:
    result = CliRunner().invoke(main, ["cost", "--window", "1x", "--config", str(loaded[1])])
    assert result.exit_code != 0 and "is not a duration" in result.output
