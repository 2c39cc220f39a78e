"""Replay on a live stack: recorded traffic from Kafka sent again to two variants on the fake
upstream, stopped midway and resumed (nothing sent twice), skips reported, and the report."""

from __future__ import annotations

import asyncio
import copy
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from infra.kafka.broker import LocalKafka
from infra.replay import judge, kafka_source
from infra.replay.command import select
from infra.replay.journal import Journal
from infra.replay.runner import KafkaResults, Replay, RunOptions
from infra.replay.spec import ExperimentSpec, Judge, Selection, Variant
from infra.replay.variants import body_for
from infra.sql import run_sql
from infra.stack import Stack
from ingress.admission.estimate import estimate
from schemas.config import TollgateConfig
from schemas.events import now_ms
from schemas.topics import REQUESTS
from sinks.reports import ready_queries
from tests.harness import TEST_KEY, start_stack, write_config
from tests.integration.traffic import Served, chat, gateway_client, upstream_stats, wait_for_sql
from tests.kafka_io import collect, latest_meter_states

pytestmark = pytest.mark.integration
REPLAY_KEY = "tg-replay-key"


SPLIT_KEY = "tg-split-key"
CAPPED = "capped"
"""The one experiment with a budget (``scope: experiment``, ``match: capped``)."""
CAP_TOKENS = 60
"""One replayed call of the capped test's size fits, a second would not (asserted there)."""


@pytest.fixture(scope="module")
def stack(kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TollgateConfig]:
    """One stack for every test here: recorded tenants, a replay key, a live split on the
    split key's tenant only, and budgets that only the capped experiment's calls meet."""
    home = tmp_path_factory.mktemp("replay")
    tenant, split = f"tenant-{home.name}", f"split-{home.name}"
    config, path = write_config(
        home,
        kafka.bootstrap_servers,
        keys=[
            {"key": TEST_KEY, "tenant": tenant},
            {"key": TEST_KEY + "-2", "tenant": f"private-{home.name}"},
            {"key": REPLAY_KEY, "tenant": f"replay-{home.name}", "replay": True},
            {"key": SPLIT_KEY, "tenant": split},
        ],
        guards={"overrides": [{"match": {"tenant": f"private-{home.name}"}, "body": "none"}]},
        routing={
            "experiments": [
                {
                    "name": "split-it",
                    "match": {"model": "gpt-4o", "tenant": split},
                    "variants": [
                        {"name": "control", "weight": 1},
                        {"name": "mini", "model": "gpt-4o-mini", "weight": 1},
                    ],
                    "holdout": 0.2,
                    "sticky": "user",
                }
            ]
        },
        budgets=[
            {"name": "cap", "scope": "experiment", "match": CAPPED, "max_tokens": CAP_TOKENS},
            {"name": "orig", "scope": "tenant", "match": tenant, "max_usd": 100},
        ],
    )
    running: Stack = start_stack(config, path)
    try:
        yield config
    finally:
        running.down()


TWO_VARIANTS = (
    Variant(name="same", model="gpt-4o-mini"),
    Variant(name="older", model="gpt-3.5-turbo"),
)


def _options(config: TollgateConfig, **kw: Any) -> RunOptions:
    """Replayed calls with the replay key through this stack's gateway."""
    gateway = f"http://{config.ingress.host}:{config.ingress.port}/v1"
    return RunOptions(gateway_url=gateway, key=REPLAY_KEY, **kw)


def _served(stats: dict, model: str) -> int:  # type: ignore[type-arg]
    return int(stats.get("models", {}).get(model, {}).get("requests", 0))


async def test_replay_to_two_variants_resumes_without_repeats_and_reports(
    stack: TollgateConfig,
) -> None:
    config = stack
    start = await _record(config, "question", public=6, private=2)
    spec = ExperimentSpec(
        name="exp-it",
        variants=TWO_VARIANTS,
        selection=Selection(since_ms=start, until_ms=now_ms() + 1, source="kafka"),
    )
    options = _options(config, concurrency=2, max_requests=5)
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
    rows = await _report(config, "exp-it")
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
    assert same["failed"] == older["failed"] == 0
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


async def _record(
    config: TollgateConfig, label: str, public: int, private: int = 0, max_tokens: int = 8
) -> int:
    """Recorded traffic (``private``: a tenant whose bodies are not kept), once its audit
    rows and usage are in ClickHouse; returns the time it started (epoch ms)."""
    since = now_ms() - 1
    clients = gateway_client(config, TEST_KEY), gateway_client(config, TEST_KEY + "-2")
    for i in range(public + private):
        client = clients[0] if i < public else clients[1]
        text = f"{label} {i}"
        await chat(client, Served(), config, model="gpt-4o-mini", text=text, max_tokens=max_tokens)
    await wait_for_sql(
        config,
        "SELECT countIf(type = 'response.completed'), (SELECT count() FROM usage FINAL "
        f"WHERE ts >= fromUnixTimestamp64Milli({since})) FROM request_log FINAL "
        f"WHERE experiment = '' AND ts >= fromUnixTimestamp64Milli({since})",
        [[public + private] * 2],
    )
    return since


async def _report(config: TollgateConfig, experiment: str) -> dict[str, dict[str, Any]]:
    """``sinks/queries/replay_report.sql`` by variant."""
    sql = ready_queries()["replay_report"].sql
    result = await asyncio.to_thread(run_sql, config, sql, {"experiment": experiment})
    return {r[0]: dict(zip(result["columns"], r, strict=True)) for r in result["rows"]}


async def _tollgate(config: TollgateConfig, *args: str) -> str:
    """The ``tollgate`` command against this stack's config; its output (it must succeed)."""
    command = Path(sys.executable).parent / "tollgate"
    proc = await asyncio.create_subprocess_exec(
        str(command),
        *args,
        "--config",
        str(config.home / "tollgate.yaml"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "TOLLGATE_REPLAY_KEY": REPLAY_KEY, "COLUMNS": "200"},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, text
    return text


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


async def test_a_judge_gives_verdicts_that_the_report_counts(
    stack: TollgateConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = stack
    since = await _record(config, "judged", public=4)
    real = judge.judge_body

    def forced(model: str, request: dict[str, Any], baseline: str, candidate: str) -> Any:
        """The judge's own prompt and schema, plus a `const` the fake must answer with:
        `same` when the candidate repeats the baseline, else `worse`."""
        body = copy.deepcopy(real(model, request, baseline, candidate))
        said = "same" if candidate.strip() == baseline.strip() else "worse"
        verdict = body["response_format"]["json_schema"]["schema"]["properties"]["verdict"]
        verdict["const"] = said
        return body

    monkeypatch.setattr(judge, "judge_body", forced)
    spec = ExperimentSpec(
        name="judged",
        variants=TWO_VARIANTS,
        selection=Selection(since_ms=since, until_ms=now_ms() + 1, source="kafka"),
        judge=Judge(model="gpt-4.1"),
    )
    before = await upstream_stats(config)
    async with KafkaResults(config.kafka.bootstrap_servers) as publish:
        _, records = await select(config, spec)
        assert len(records) == 4
        options = _options(config, concurrency=2)
        outcome = await Replay(spec, Journal.open(config.home, spec), options, publish).run(records)
    assert (outcome.sent, outcome.failed, outcome.skipped) == (8, 0, 0)
    after = await upstream_stats(config)
    assert _served(after, "gpt-4.1") - _served(before, "gpt-4.1") == 8  # one judge call each

    # every verdict is the one the const forced, on the variant it judged
    rows = await wait_for_sql(
        config,
        "SELECT variant, judge, exact_match, count() FROM replay_results FINAL "
        "WHERE experiment = 'judged' GROUP BY variant, judge, exact_match ORDER BY variant, judge",
        lambda rows: sum(r[3] for r in rows) == 8,
    )
    assert all(r[1] == ("same" if r[2] else "worse") for r in rows), rows
    worse = sum(r[3] for r in rows if r[0] == "older" and r[1] == "worse")
    assert worse >= 1 and [r[:2] for r in rows if r[0] == "same"] == [["same", "same"]]
    await wait_for_sql(
        config,
        "SELECT count() FROM requests WHERE experiment = 'judged' AND variant = 'judge' "
        "AND cost > 0",
        [[8]],
    )
    expected = {
        "same": {"judge_better": 0, "judge_same": 4, "judge_worse": 0},
        "older": {"judge_better": 0, "judge_same": 4 - worse, "judge_worse": worse},
    }
    by_sql = await _report(config, "judged")
    by_cli = {
        r["variant"]: r
        for r in orjson.loads(await _tollgate(config, "replay", "report", "judged", "--json"))
    }
    for report in (by_sql, by_cli):
        assert list(report) == ["baseline", "judge", "older", "same"]
        for variant, counts in expected.items():
            assert {k: report[variant][k] for k in counts} == counts, report[variant]
        # the judge's own calls: priced, no verdicts of their own
        assert (report["judge"]["requests"], report["judge"]["errors"]) == (8, 0)
        assert Decimal(str(report["judge"]["cost_usd"])) > 0
        assert not any(report["judge"][k] for k in expected["same"])


async def _retention_passes(bootstrap: str) -> None:
    """What Kafka's retention does, now: every record on tollgate.requests deleted."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(REQUESTS.name, p) for p in parts.partitions_for_topic(REQUESTS.name)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records({tp: RecordsToDelete(end) for tp, end in ends.items()})
    finally:
        await admin.close()


async def test_past_kafka_retention_the_audit_log_gives_the_same_requests(
    stack: TollgateConfig,
) -> None:
    config = stack
    since = await _record(config, "archived", public=3, private=1)
    until = now_ms() + 1

    def spec(source: str) -> ExperimentSpec:
        selection = Selection(since_ms=since, until_ms=until, source=source)
        return ExperimentSpec(
            name="archived",
            variants=(Variant(name="mini", model="gpt-4o-mini"),),
            selection=selection,
        )

    found, from_kafka = await select(config, spec("kafka"))
    assert found == "kafka" and len(from_kafka) == 4
    found, from_audit = await select(config, spec("clickhouse"))
    assert found == "clickhouse"
    assert from_audit == from_kafka  # who, what, body, baseline answer, status and tokens

    await _retention_passes(config.kafka.bootstrap_servers)
    with pytest.raises(kafka_source.RetentionPassed):
        await kafka_source.load(config.kafka.bootstrap_servers, spec("auto").selection, strict=True)
    before = await upstream_stats(config)
    out = await _tollgate(
        config, "replay", "run", "archived", "--variant", "mini=gpt-4o-mini",
        "--since", _iso(since), "--until", _iso(until), "--source", "auto",
    )  # fmt: skip
    assert "Kafka's retention has passed; reading the ClickHouse audit log instead" in out
    assert "4 recorded requests selected from clickhouse; 3 calls to send, 1 to report" in out
    assert "3 sent (0 failed), 1 skipped" in out
    assert "mini: 1 skipped: body not kept: policy none" in out
    after = await upstream_stats(config)
    assert _served(after, "gpt-4o-mini") - _served(before, "gpt-4o-mini") == 3
    # the same model on the same prompt: each answer is its recorded one
    await wait_for_sql(
        config,
        "SELECT status, skipped, baseline, exact_match, count() FROM replay_results FINAL "
        "WHERE experiment = 'archived' GROUP BY ALL ORDER BY status",
        [[0, "body not kept: policy none", False, False, 1], [200, "", True, True, 3]],
    )
    status = orjson.loads(await _tollgate(config, "replay", "status", "archived", "--json"))
    assert status == [
        {
            "variant": "mini",
            "sent": 3,
            "done": 3,
            "in_doubt": 0,
            "skipped": {"body not kept: policy none": 1},
        }
    ]


USERS, ROUNDS = 100, 3
SHARES = {"holdout": 0.2, "control": 0.4, "mini": 0.4}
"""holdout 0.2 of users, the rest split 1:1 between control and mini."""


async def test_a_live_split_keeps_each_user_on_one_variant(stack: TollgateConfig) -> None:
    config = stack
    tenant = f"split-{config.home.name}"
    client = gateway_client(config, SPLIT_KEY)
    gate = asyncio.Semaphore(8)
    seen: dict[str, set[tuple[str, str, str]]] = {}
    variant_of: dict[str, str] = {}

    async def ask(user: str, round_: int) -> None:
        async with gate:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": f"round {round_}"}],
                max_tokens=4,
                user=user,
            )
        h, answer = raw.headers, raw.parse()
        seen.setdefault(user, set()).add(
            (h["x-tollgate-experiment"], h["x-tollgate-variant"], answer.model)
        )
        variant_of[h["x-request-id"]] = h["x-tollgate-variant"]

    before = await upstream_stats(config)
    users = [f"user-{i:03d}" for i in range(USERS)]
    await asyncio.gather(*(ask(u, r) for r in range(ROUNDS) for u in users))
    after = await upstream_stats(config)

    # sticky: one (experiment, variant, model) per user over all rounds; the holdout and
    # control stay on the normal route (the model asked for), mini gets its model
    assert all(len(s) == 1 for s in seen.values()), [s for s in seen.values() if len(s) > 1]
    model_of = {"holdout": "gpt-4o", "control": "gpt-4o", "mini": "gpt-4o-mini"}
    per_variant: Counter[str] = Counter()
    for [(experiment, variant, model)] in seen.values():
        assert experiment == "split-it" and model == model_of[variant]
        per_variant[variant] += 1
    # each user's bucket is an independent uniform draw, so a variant's user count is
    # binomial(100, share): within 4 standard deviations (a miss has p < 1e-4)
    for variant, share in SHARES.items():
        sd = math.sqrt(USERS * share * (1 - share))
        assert abs(per_variant[variant] - USERS * share) <= 4 * sd, per_variant
    baseline = ROUNDS * (per_variant["holdout"] + per_variant["control"])
    assert _served(after, "gpt-4o") - _served(before, "gpt-4o") == baseline
    assert _served(after, "gpt-4o-mini") - _served(before, "gpt-4o-mini") == (
        ROUNDS * per_variant["mini"]
    )
    # every event of every call on tollgate.requests carries the experiment and variant
    events = await collect(
        config.kafka.bootstrap_servers,
        REQUESTS.name,
        lambda r: orjson.loads(r.value).get("tenant") == tenant,
        expected=2 * USERS * ROUNDS,
    )
    tags: Counter[str] = Counter()
    for record in events:
        event = orjson.loads(record.value)
        assert event["experiment"] == "split-it"
        assert event["variant"] == variant_of[event["request_id"]]
        tags[event["type"]] += 1
    assert tags == {"request.received": USERS * ROUNDS, "response.completed": USERS * ROUNDS}


async def test_an_exhausted_experiment_budget_refuses_without_touching_the_tenants(
    stack: TollgateConfig,
) -> None:
    config = stack
    tenant = f"tenant-{config.home.name}"
    since = await _record(config, "capped", public=3, max_tokens=40)
    spec = ExperimentSpec(
        name=CAPPED,
        variants=(Variant(name="mini", model="gpt-4o-mini"),),
        selection=Selection(since_ms=since, until_ms=now_ms() + 1, source="kafka"),
    )
    _, records = await select(config, spec)
    # one call fits the experiment's budget, two do not
    [per_call] = {
        estimate(body_for(spec.variants[0], r.body, r.model), "gpt-4o-mini", None, 1024)[1]
        for r in records
    }
    assert per_call <= CAP_TOKENS < 2 * per_call
    orig = f"budget:orig:{tenant}"
    spent = await wait_for_sql(
        config, f"SELECT sum(cost) FROM usage FINAL WHERE tenant = '{tenant}'", lambda r: True
    )
    untouched = await _meter(config, orig, lambda usd: usd == Decimal(spent[0][0]))

    options = _options(config, concurrency=1)
    async with KafkaResults(config.kafka.bootstrap_servers) as publish:
        outcome = await Replay(spec, Journal.open(config.home, spec), options, publish).run(records)
    assert (outcome.sent, outcome.failed) == (3, 2)
    await wait_for_sql(
        config,
        f"SELECT status, count() FROM replay_results FINAL WHERE experiment = '{CAPPED}' "
        "GROUP BY status ORDER BY status",
        [[200, 1], [429, 2]],
    )
    import openai

    with pytest.raises(openai.RateLimitError) as refused:
        await gateway_client(config, REPLAY_KEY).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "one more"}],
            max_tokens=8,
            extra_headers={"x-tollgate-experiment": CAPPED, "x-tollgate-variant": "mini"},
        )
    assert refused.value.status_code == 429
    assert refused.value.code == "budget_exceeded" and "`cap`" in refused.value.message
    report = await _report(config, CAPPED)
    # the refusals published no request events: only replay_results knows of them
    assert (report["mini"]["requests"], report["mini"]["errors"]) == (1, 0)
    assert (report["mini"]["failed"], report["mini"]["compared"]) == (2, 1)
    # the admitted call is metered on the experiment, and the tenant's meter did not move
    await _meter(config, f"budget:cap:{CAPPED}", lambda usd: usd > 0)
    assert await _meter(config, orig, lambda usd: True) == untouched


async def _meter(config: TollgateConfig, meter: str, ok: Callable[[Decimal], bool]) -> Decimal:
    """A budget meter's spend over its published shares, once ``ok`` says it is there."""
    deadline = time.monotonic() + 30
    while True:
        shares = await latest_meter_states(config.kafka.bootstrap_servers, meter, wait_s=1.5)
        usd = sum((Decimal(s.spent_usd) for s in shares), Decimal(0))
        if ok(usd) or time.monotonic() > deadline:
            assert ok(usd), f"{meter}: {usd}"
            return usd
