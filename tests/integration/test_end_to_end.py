"""A request through every stage: ingress → Kafka → processors → sink → ClickHouse → SQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import orjson
import pytest

from infra.kafka.broker import LocalKafka
from infra.stack import Stack
from schemas.config import TollgateConfig
from schemas.events import Usage
from schemas.tokens import count_chat_prompt
from tests.harness import TEST_KEY, start_stack, write_config
from tests.integration.traffic import Served, chat, gateway_client, upstream_stats, wait_for_sql

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(
    kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TollgateConfig, Path]]:
    config, path = write_config(tmp_path_factory.mktemp("e2e"), kafka.bootstrap_servers)
    running: Stack = start_stack(config, path)
    try:
        yield config, path
    finally:
        running.down()


def _totals_sql(tenants: list[str]) -> str:
    names = ", ".join(f"'{t}'" for t in sorted(tenants))
    return (
        "SELECT tenant, count(), sum(prompt_tokens), sum(completion_tokens), toString(sum(cost)) "
        f"FROM usage FINAL WHERE tenant IN ({names}) GROUP BY tenant ORDER BY tenant"
    )


async def test_tokens_and_cost_in_clickhouse_equal_what_was_served(
    stack: tuple[TollgateConfig, Path],
) -> None:
    config, _ = stack
    tenant, other = config.keys[0].tenant, config.keys[1].tenant
    served = {tenant: Served(), other: Served()}
    first, second = gateway_client(config, TEST_KEY), gateway_client(config, TEST_KEY + "-2")
    before = await upstream_stats(config)
    calls = [
        chat(
            first,
            served[tenant],
            config,
            model=model,
            text=f"question {i} about {model}",
            max_tokens=5 + i % 7,
        )
        for i in range(24)
        for model in (("gpt-4o-mini", "gpt-4o", "gpt-4.1")[i % 3],)
    ]
    calls += [
        chat(second, served[other], config, model="gpt-4o-mini", text=f"other {i}")
        for i in range(8)
    ]
    await asyncio.gather(*calls)
    with pytest.raises(openai.InternalServerError):
        await first.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "fail"}],
            extra_body={"metadata": {"fake_status": "500"}},
        )
    hi = [{"role": "user", "content": "hi"}]
    experiment = {"x-tollgate-experiment": "e", "x-tollgate-variant": "v"}  # replay keys only
    with pytest.raises(openai.PermissionDeniedError):  # refused before anything was accepted
        await first.chat.completions.create(model="gpt-4o", messages=hi, extra_headers=experiment)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError):
        await first.chat.completions.create(model="gpt-4o", messages=hi, temperature=3)  # type: ignore[arg-type]
    answered = time.monotonic()

    expected = [
        [t, s.requests, s.prompt_tokens, s.completion_tokens, s.cost]
        for t, s in sorted(served.items())
    ]
    await wait_for_sql(
        config, _totals_sql([tenant, other]), lambda rows: _exact(rows) == expected, wait_s=30
    )
    visible_after = time.monotonic() - answered
    assert visible_after < 15, f"usage took {visible_after:.1f} s to reach ClickHouse"

    # the upstream's own books agree with what clients were told
    after = await upstream_stats(config)
    served_tokens = sum(s.prompt_tokens + s.completion_tokens for s in served.values())
    assert _stats_tokens(after) - _stats_tokens(before) == served_tokens

    # the audit log holds every event, the failure included, and no request body leaks a key
    rows = await wait_for_sql(
        config,
        "SELECT type, count() FROM request_log FINAL "
        f"WHERE tenant = '{tenant}' GROUP BY type ORDER BY type",
        lambda r: dict(r).get("response.failed") == 1 and dict(r).get("request.refused") == 2,
    )
    assert dict(rows) == {
        "request.received": 25,
        "request.refused": 2,
        "response.completed": 24,
        "response.failed": 1,
    }
    refused = await wait_for_sql(
        config,
        "SELECT status, error_type, model, key_id != '' FROM request_log FINAL "
        f"WHERE tenant = '{tenant}' AND type = 'request.refused' ORDER BY status",
        lambda r: len(r) == 2,
    )
    assert refused == [
        [400, "invalid_request_error", "gpt-4o", 1],
        [403, "invalid_request_error", "gpt-4o", 1],
    ]
    leaked = await wait_for_sql(
        config, f"SELECT count() FROM request_log WHERE event LIKE '%{TEST_KEY}%'", [[0]]
    )
    assert leaked == [[0]]


async def test_tiktoken_counts_when_the_upstream_omits_usage(
    stack: tuple[TollgateConfig, Path],
) -> None:
    config, _ = stack
    client = gateway_client(config, TEST_KEY)
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "count me yourself"}],
        max_tokens=9,
        extra_body={"metadata": {"fake_omit_usage": "1"}},
    )
    completion = raw.parse()
    assert completion.usage is None
    rid = raw.headers["x-request-id"]
    rows = await wait_for_sql(
        config,
        "SELECT prompt_tokens, completion_tokens, token_source FROM usage FINAL "
        f"WHERE request_id = '{rid}'",
        lambda r: len(r) == 1,
    )
    prompt = count_chat_prompt([{"role": "user", "content": "count me yourself"}], "gpt-4o")
    assert rows == [[prompt, 9, "tiktoken"]]
    assert Usage(prompt_tokens=prompt, completion_tokens=9).total_tokens == prompt + 9


async def test_a_prompt_too_large_for_an_event_is_served_billed_and_left_out(
    stack: tuple[TollgateConfig, Path],
) -> None:
    """Kafka refuses records past ~1 MB; the event keeps the prompt's token count instead."""
    config, _ = stack
    client = gateway_client(config, TEST_KEY)
    messages = [{"role": "user", "content": "word " * 150_000}]  # 750 KB
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=messages,  # type: ignore[arg-type]
        max_tokens=4,
        extra_body={"metadata": {"fake_omit_usage": "1"}},  # the processors count it
    )
    rid = raw.headers["x-request-id"]
    rows = await wait_for_sql(
        config,
        "SELECT u.prompt_tokens, r.body_kept FROM usage AS u FINAL JOIN "
        "(SELECT request_id, body_kept FROM request_log FINAL WHERE type = 'request.received') "
        f"AS r USING request_id WHERE u.request_id = '{rid}'",
        lambda r: len(r) == 1,
    )
    assert rows == [[count_chat_prompt(messages, "gpt-4o-mini"), "too_large"]]


def test_tollgate_sql_command_reads_through_the_sink(stack: tuple[TollgateConfig, Path]) -> None:
    _, path = stack
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.cli",
            "sql",
            "--json",
            "--config",
            str(path),
            "SELECT count() AS n FROM usage FINAL",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    data = orjson.loads(result.stdout)
    assert data["columns"] == ["n"] and int(data["rows"][0][0]) >= 1
    refused = subprocess.run(
        [sys.executable, "-m", "infra.cli", "sql", "--config", str(path), "DROP TABLE usage"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert refused.returncode != 0 and "only reading statements" in refused.stderr


def _exact(rows: list[list[object]]) -> list[list[object]]:
    """Cost comes back as a decimal string; compare it as a Decimal, to the last digit."""
    return [[*row[:-1], Decimal(str(row[-1]))] for row in rows]


def _stats_tokens(stats: dict[str, object]) -> int:
    models = stats.get("models", {})
    assert isinstance(models, dict)
    return sum(int(m["prompt_tokens"]) + int(m["completion_tokens"]) for m in models.values())
