"""Replay on a live stack: recorded traffic from Kafka sent again to two variants on the fake
upstream, stopped midway and resumed (nothing sent twice), skips reported, and the report."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

import orjson
import pytest

from infra.kafka.broker import LocalKafka
from infra.replay.command import select
from infra.replay.journal import Journal
from infra.replay.runner import KafkaResults, Replay, RunOptions
from infra.replay.spec import ExperimentSpec, Selection, Variant
from infra.sql import run_sql
from infra.stack import Stack
from schemas.config import TollgateConfig
from schemas.events import now_ms
from sinks.reports import ready_queries
from tests.harness import TEST_KEY, start_stack, write_config
from tests.integration.traffic import Served, chat, gateway_client, upstream_stats, wait_for_sql

pytestmark = pytest.mark.integration
REPLAY_KEY = "tg-replay-key"


@pytest.fixture(scope="module")
def stack(kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TollgateConfig]:
    home = tmp_path_factory.mktemp("replay")
    config, path = write_config(
        home,
        kafka.bootstrap_servers,
        keys=[
            {"key": TEST_KEY, "tenant": f"tenant-{home.name}"},
            {"key": TEST_KEY + "-2", "tenant": f"private-{home.name}"},
            {"key": REPLAY_KEY, "tenant": f"replay-{home.name}", "replay": True},
        ],
        guards={"overrides": [{"match": {"tenant": f"private-{home.name}"}, "body": "none"}]},
    )
    running: Stack = start_stack(config, path)
    try:
        yield config
    finally:
        running.down()


def _served(stats: dict, model: str) -> int:  # type: ignore[type-arg]
    return int(stats.get("models", {}).get(model, {}).get("requests", 0))


async def test_replay_to_two_variants_resumes_without_repeats_and_reports(
    stack: TollgateConfig,
) -> None:
    config = stack
    start = now_ms() - 1000
    public, private = gateway_client(config, TEST_KEY), gateway_client(config, TEST_KEY + "-2")
    for i in range(6):
        await chat(
            public, Served(), config, model="gpt-4o-mini", text=f"question {i}", max_tokens=8
        )
    for i in range(2):
        await chat(private, Served(), config, model="gpt-4o-mini", text=f"private {i}")
    await wait_for_sql(
        config,
        "SELECT count() FROM request_log WHERE type = 'response.completed' AND experiment = ''",
        lambda rows: rows[0][0] >= 8,
    )
    spec = ExperimentSpec(
        name="exp-it",
        variants=(
            Variant(name="same", model="gpt-4o-mini"),
            Variant(name="older", model="gpt-3.5-turbo"),
        ),
        selection=Selection(since_ms=start, until_ms=now_ms() + 1, source="kafka"),
    )
    gateway = f"http://{config.ingress.host}:{config.ingress.port}/v1"
    options = RunOptions(gateway_url=gateway, key=REPLAY_KEY, concurrency=2, max_requests=5)
    before = await upstream_stats(config)
    async with KafkaResults(config.kafka.bootstrap_servers) as publish:
        source, records = await select(config, spec)
        assert (source, len(records)) == ("kafka", 8)
        first = await Replay(spec, Journal.open(config.home, spec), options, publish).run(records)
        assert (first.sent, first.skipped, first.stopped) == (5, 4, True)
        resumed = Replay(
            spec, Journal.open(config.home, spec), replace(options, max_requests=None), publish
        )
        second = await resumed.run(records)
        assert (second.sent, second.failed, second.skipped, second.stopped) == (7, 0, 0, False)
    after = await upstream_stats(config)
    # each of the 6 replayable requests reached the upstream once per variant, no more
    assert _served(after, "gpt-4o-mini") - _served(before, "gpt-4o-mini") == 6
    assert _served(after, "gpt-3.5-turbo") - _served(before, "gpt-3.5-turbo") == 6
    journal = Journal.open(config.home, spec)
    lines = [orjson.loads(x) for x in journal.path.read_bytes().splitlines()]
    sent = Counter((x["variant"], x["source"]) for x in lines if x["e"] == "sent")
    assert len(sent) == 12 and set(sent.values()) == {1}
    reasons = {x["reason"] for x in lines if x["e"] == "skipped"}
    assert reasons == {"body not kept: policy none"}

    # the replayed calls' own events: tagged, once each
    await wait_for_sql(
        config,
        "SELECT variant, count(), uniqExact(request_id) FROM request_log FINAL "
        "WHERE experiment = 'exp-it' AND type = 'request.received' GROUP BY variant "
        "ORDER BY variant",
        [["older", 6, 6], ["same", 6, 6]],
    )
    await wait_for_sql(
        config,
        "SELECT count() FROM requests WHERE experiment = 'exp-it' AND cost > 0",
        [[12]],
    )
    await wait_for_sql(
        config, "SELECT count() FROM replay_results FINAL WHERE experiment = 'exp-it'", [[16]]
    )
    sql = ready_queries()["replay_report"].sql
    result = await asyncio.to_thread(run_sql, config, sql, {"experiment": "exp-it"})
    rows = {r[0]: dict(zip(result["columns"], r, strict=True)) for r in result["rows"]}
    assert list(rows) == ["baseline", "older", "same"]
    base, same, older = rows["baseline"], rows["same"], rows["older"]
    assert base["requests"] == same["requests"] == older["requests"] == 6
    assert same["errors"] == older["errors"] == 0
    # same model, same prompt: the same answer, tokens and cost as the recorded one
    assert (same["exact_match_rate"], same["similarity"]) == (1.0, 1.0)
    assert same["prompt_tokens"] == base["prompt_tokens"]
    assert Decimal(same["cost_usd"]) == Decimal(base["cost_usd"]) > 0
    # another model (another tokenizer at the fake): other words
    assert older["exact_match_rate"] < 1.0 and older["similarity"] < 1.0
    assert Decimal(older["cost_usd"]) != Decimal(same["cost_usd"])
    assert same["skipped"] == older["skipped"] == 2 and same["compared"] == 6
    assert same["p50_ms"] > 0 and same["p95_ms"] >= same["p50_ms"]


async def test_only_replay_keys_may_tag_an_experiment(stack: TollgateConfig) -> None:
    import openai

    client = gateway_client(stack, TEST_KEY)
    with pytest.raises(openai.PermissionDeniedError, match="only replay keys"):
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-tollgate-experiment": "e", "x-tollgate-variant": "v"},
        )
