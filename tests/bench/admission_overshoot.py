"""How far past a budget do many clients get through two ingress processes, and how old is
the state each ingress decides from?

    .venv/bin/python -m tests.bench.admission_overshoot [--clients 32] [--ingress 2]
        [--budget-requests 300] [--rate REQ_PER_S] [--no-stream-guards] [--rounds N]

Starts a real Kafka broker, the fake upstream, the processors and ``--ingress`` ingress
processes (one worker each), with one hard USD budget for the tenant sized to
``--budget-requests`` requests at the real price of one answer. The clients, spread over
the ingress processes, send until the budget says it is spent (a 429 whose Retry-After is
the period's end). It prints:

- overshoot: requests and dollars served past the budget, counted by the clients from
  every answer's usage at catalog prices and by the processors' own meter state;
- lag: the admission-state lag p50/p99 (admitting a request → the processors' published
  state counting it), merged from each ingress's ``/metrics`` histogram, and split by the
  topics' record times into publishing (ingress → log) and processing (log → progress),
  also by how far into its round a request was admitted (``by_time_into_round``: a round
  starts as a burst of every client at once, and its first 200-300 ms carry the worst)
  and by round (``by_round``, in the order they ran).

With ``--rounds N`` the measurement is repeated N times, each round a fresh tenant with its
own budget, and the lag is also pooled over all rounds: one round of the default budget
lasts about a second, and its p99 is the third-worst of ~300 samples. Each round (the
first one too, after the warm-up) starts once every consumer group of the request log,
the guard worker's included, has committed its end: otherwise a round measures the
Presidio backlog the previous burst left behind (seconds of a core).

Without ``--rate`` the clients send as fast as they are answered (saturation: on two
cores the processors then queue); with it, at that rate in all.

Targets (issue 4): overshoot at most one request per ingress process; lag p99 ≤ 250 ms.
Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict

import aiohttp
import httpx
import orjson
import yaml
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from infra.processes import terminate_group, wait_port
from infra.topics import all_topics, ensure_topics
from schemas.config import TollgateConfig, load_config
from schemas.events import MeterProgress, RequestReceived, Usage, decode
from schemas.pricing import Price, build_price_book
from schemas.topics import ADMISSION, REQUESTS
from tests.bench.stages import spawn, wait_worker_ready
from tests.harness import TEST_KEY, free_port, running_broker, write_config
from tests.kafka_io import collect, latest_meter_states, watch_progress


class _Body(TypedDict):
    """The chat request every benchmark client sends."""

    model: str
    max_tokens: int
    messages: list[dict[str, str]]


BODY: _Body = {
    "model": "gpt-4o-mini",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Benchmark me, briefly."}],
}
LAG_METRIC = "tollgate_admission_state_lag_seconds_bucket"


@dataclass
class Tally:
    served: int = 0
    usd: Decimal = Decimal(0)
    per_ingress: dict[int, int] = field(default_factory=dict)
    share_waits: int = 0
    refused: int = 0


def _price(config: TollgateConfig) -> Price:
    price = build_price_book(config.prices()).lookup(BODY["model"], int(time.time() * 1000))
    assert price is not None, "gpt-4o-mini is missing from the price catalog"
    return price


def _cost(price: Price, usage: dict[str, Any]) -> Decimal:
    return price.cost(
        Usage(prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"])
    )


async def _client(  # noqa: PLR0917
    http: aiohttp.ClientSession,
    url: str,
    index: int,
    tally: Tally,
    deadline: float,
    price: Price,
    interval_s: float,
    key: str,
) -> None:
    """Sends until the budget refuses; with ``interval_s``, at most one request per it."""
    headers = {"authorization": f"Bearer {key}"}
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        next_at += interval_s
        await asyncio.sleep(max(next_at - time.monotonic(), 0))
        async with http.post(url, json=BODY, headers=headers) as answer:
            data = await answer.read()
            if answer.status == 200:
                tally.served += 1
                tally.usd += _cost(price, orjson.loads(data)["usage"])
                tally.per_ingress[index] = tally.per_ingress.get(index, 0) + 1
                continue
            if answer.status != 429:
                raise RuntimeError(f"unexpected {answer.status}: {data[:500]!r}")
            retry_after = answer.headers.get("retry-after")
        if retry_after == "1":  # a replica's share: wait for the state to catch up
            tally.share_waits += 1
            await asyncio.sleep(0.02)
            continue
        tally.refused += 1
        return  # spent for the period


def _lag_buckets(expositions: list[str]) -> dict[float, float]:
    buckets: dict[float, float] = {}
    for text in expositions:
        for line in text.splitlines():
            if line.startswith(LAG_METRIC):
                bound = line.split('le="', 1)[1].split('"', 1)[0]
                upper = math.inf if bound == "+Inf" else float(bound)
                buckets[upper] = buckets.get(upper, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def _lag_quantiles(
    expositions: list[str], quantiles: tuple[float, ...], baseline: list[str] | None = None
) -> list[float]:
    """Merge the cumulative histograms (less ``baseline``, the counts before the measured
    run) and interpolate linearly inside the bucket."""
    before = _lag_buckets(baseline or [])
    buckets = {k: v - before.get(k, 0.0) for k, v in _lag_buckets(expositions).items()}
    bounds = sorted(buckets)
    total = buckets.get(math.inf, 0.0)
    out = []
    for q in quantiles:
        rank, lower, below = q * total, 0.0, 0.0
        for upper in bounds:
            if buckets[upper] >= rank and total:
                if upper == math.inf:
                    out.append(lower)
                    break
                inside = buckets[upper] - below
                out.append(lower + (upper - lower) * ((rank - below) / inside if inside else 1))
                break
            lower, below = upper, buckets[upper]
        else:
            out.append(math.nan)
    return out


async def _processors_spent(config: TollgateConfig, meter: str) -> Decimal:
    shares = await latest_meter_states(config.kafka.bootstrap_servers, meter, wait_s=4)
    return sum((Decimal(s.spent_usd) for s in shares), Decimal(0))


async def _broker_timestamps(bootstrap: str) -> None:
    """Record times set by the broker on append, not by the producer: a record waiting in
    a producer's batch then counts as publishing, not as processing."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, name, {"message.timestamp.type": "LogAppendTime"}
                )
                for name in (REQUESTS.name, ADMISSION.name)
            ]
        )
    finally:
        await admin.close()


Stamp = tuple[str, int, int, int | None]
"""A request's tenant (its round), admission, append and covering-progress times (ms)."""


ROUND_SLICES_MS = ((0, 100), (100, 200), (200, 300), (300, 500))
"""A round's first requests against each other: a round starts as a burst of all clients."""


async def _lag_stages(bootstrap: str, tenants: set[str], since_ms: int) -> dict[str, Any]:
    """Where the lag goes, from the broker's append times: ingress → log (publishing) and
    log → the first progress covering the event (the processors)."""
    requests = await collect(bootstrap, REQUESTS.name, lambda r: True, 1 << 30, wait_s=4)
    marks = await collect(
        bootstrap,
        ADMISSION.name,
        lambda r: r.key is not None and r.key.startswith(b"progress#"),
        1 << 30,
        wait_s=4,
    )
    progress: dict[int, list[tuple[int, int]]] = {}
    for record in marks:
        mark = decode(record.value)
        assert isinstance(mark, MeterProgress)
        progress.setdefault(mark.partition, []).append((mark.offset, record.timestamp))
    stamps: list[Stamp] = []
    for record in requests:
        event = decode(record.value)
        if not isinstance(event, RequestReceived) or event.tenant not in tenants:
            continue
        if event.ts < since_ms:
            continue
        covering = (
            ts for offset, ts in progress.get(record.partition, []) if offset >= record.offset
        )
        stamps.append((event.tenant, event.ts, record.timestamp, next(covering, None)))
    return _stage_quantiles(stamps) | {
        "by_time_into_round": by_time_into_round(stamps),
        "by_round": by_round(stamps),
    }


def by_round(stamps: list[Stamp]) -> list[dict[str, float]]:
    """The stages' quantiles per round, in the order the rounds ran."""
    rounds: dict[str, list[Stamp]] = {}
    for stamp in sorted(stamps, key=lambda s: s[1]):
        rounds.setdefault(stamp[0], []).append(stamp)
    return [{"requests": len(s), **_stage_quantiles(s)} for s in rounds.values()]


def by_time_into_round(stamps: list[Stamp]) -> dict[str, dict[str, float]]:
    """The stages' quantiles per slice of time since each round's first admission."""
    starts: dict[str, int] = {}
    for tenant, admitted, _, _ in stamps:
        starts[tenant] = min(admitted, starts.get(tenant, admitted))
    labels = [f"{lo}-{hi}ms" for lo, hi in ROUND_SLICES_MS] + [f"{ROUND_SLICES_MS[-1][1]}ms-"]
    bounded = list(zip(ROUND_SLICES_MS, labels, strict=False))
    by_slice: dict[str, list[Stamp]] = {}
    for stamp in stamps:
        since_start = stamp[1] - starts[stamp[0]]
        label = next((name for (lo, hi), name in bounded if lo <= since_start < hi), labels[-1])
        by_slice.setdefault(label, []).append(stamp)
    return {
        label: {"requests": len(by_slice[label]), **_stage_quantiles(by_slice[label])}
        for label in labels
        if label in by_slice
    }


def _stage_quantiles(stamps: list[Stamp]) -> dict[str, float]:
    publish = sorted(appended - admitted for _, admitted, appended, _ in stamps)
    process = sorted(
        covered - appended for _, _, appended, covered in stamps if covered is not None
    )
    out: dict[str, float] = {}
    for name, values in (("publish", publish), ("process", process)):
        for q in (0.5, 0.99):
            out[f"{name}_p{int(q * 100)}_ms"] = (
                values[min(int(q * len(values)), len(values) - 1)] if values else math.nan
            )
    return out


def _round_key(index: int) -> str:
    return TEST_KEY if index == 0 else f"{TEST_KEY}-round-{index}"


def _round_budget(index: int) -> str:
    return "bench" if index == 0 else f"bench-{index}"


def _round_tenant(home: Path, index: int) -> str:
    return f"tenant-{home.name}" if index == 0 else f"round-{index}-{home.name}"


def _configs(  # noqa: PLR0917
    home: Path,
    bootstrap: str,
    ingress: int,
    budget_usd: Decimal,
    upstream: int,
    analysis: bool,
    rounds: int = 1,
    share_wait_s: float = 1.0,
):
    """One tenant, key and budget per round (a fresh budget each time); the warm-up's
    tenant has none."""
    keys = [
        {"key": TEST_KEY, "tenant": _round_tenant(home, 0), "team": "qa"},
        {"key": TEST_KEY + "-2", "tenant": f"other-{home.name}"},
        *({"key": _round_key(i), "tenant": _round_tenant(home, i)} for i in range(1, rounds)),
    ]
    budgets = [
        {
            "name": _round_budget(i),
            "scope": "tenant",
            "match": _round_tenant(home, i),
            "max_usd": str(budget_usd),
            "thresholds": [0.5],
        }
        for i in range(rounds)
    ]
    base, path = write_config(
        home,
        bootstrap,
        fake_upstream={"port": upstream},
        providers={"fake": {"kind": "openai", "base_url": f"http://127.0.0.1:{upstream}/v1"}},
        deployments=[{"model": "gpt-4o-mini", "provider": "fake"}],
        guards={"analysis": {"enabled": analysis}},
        keys=keys,
        budgets=budgets,
        admission={"share_wait_s": share_wait_s},
    )
    configs = [(base, path)]
    for i in range(1, ingress):
        data = yaml.safe_load(path.read_text())
        data["ingress"]["port"] = free_port()
        other = home / f"tollgate-{i}.yaml"
        other.write_text(yaml.safe_dump(data))
        configs.append((load_config(other, env={}), other))
    return configs


async def _calibrate(upstream: int) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            f"http://127.0.0.1:{upstream}/v1/chat/completions",
            json=BODY,
            headers={"authorization": "Bearer bench"},
        )
        answer.raise_for_status()
        return dict(answer.json()["usage"])


def run(  # noqa: PLR0917
    clients: int,
    ingress: int,
    budget_requests: int,
    seconds: float,
    analysis: bool = True,
    rate: float = 0.0,
    warmup_s: float = 20.0,
    rounds: int = 1,
    share_wait_s: float = 1.0,
) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="tollgate-overshoot-"))
    processes: list[subprocess.Popen[bytes]] = []
    with running_broker(home / "kafka") as broker:
        try:
            upstream = free_port()
            probe, probe_path = write_config(
                home / "probe", broker.bootstrap_servers, fake_upstream={"port": upstream}
            )
            processes.append(
                spawn(["upstream", "--config", str(probe_path)], home / "upstream.log")
            )
            wait_port("127.0.0.1", upstream, "fake upstream")
            one = _cost(_price(probe), asyncio.run(_calibrate(upstream)))
            budget = one * budget_requests
            gw = home / "gw"
            configs = _configs(
                gw,
                broker.bootstrap_servers,
                ingress,
                budget,
                upstream,
                analysis,
                rounds,
                share_wait_s,
            )
            config = configs[0][0]
            asyncio.run(ensure_topics(broker.bootstrap_servers, all_topics(config)))
            asyncio.run(_broker_timestamps(broker.bootstrap_servers))
            print("==> starting the processors", file=sys.stderr)
            worker = spawn(["worker", "--config", str(configs[0][1])], home / "w.log")
            processes.append(worker)
            if analysis:  # as `tollgate up` runs it: Presidio in a worker of its own
                guard_worker = ["guard-worker", "--config", str(configs[0][1])]
                processes.append(spawn(guard_worker, home / "guards.log"))
            wait_worker_ready(config, worker, home / "w.log")
            for i, (each, each_path) in enumerate(configs):
                print(f"==> starting ingress {i + 1}", file=sys.stderr)
                processes.append(
                    spawn(["ingress", "--config", str(each_path)], home / f"ingress{i}.log")
                )
                wait_port("127.0.0.1", each.ingress.port, f"ingress {i + 1}")
            time.sleep(2)  # heartbeats: each replica learns the other is there
            print(
                f"==> {clients} clients against a ${budget:.6f} budget "
                f"({budget_requests} answers at ${one:.8f})",
                file=sys.stderr,
            )
            return asyncio.run(
                _measure(
                    configs, clients, seconds, budget, one, budget_requests, rate, warmup_s, rounds
                )
            )
        finally:
            for process in reversed(processes):
                terminate_group(process.pid, 15)


async def _warm_up(configs: list[tuple[TollgateConfig, Path]], clients: int, seconds: float) -> int:
    """Traffic of another tenant (no budget) at full speed: a fresh broker JIT-compiles
    its hot paths for a minute or so (measured: its C2 compiler took a third of a core),
    and the Python stages fill their caches. Production brokers are warm."""
    urls = [f"http://{c.ingress.host}:{c.ingress.port}/v1/chat/completions" for c, _ in configs]
    headers = {"authorization": f"Bearer {TEST_KEY}-2"}
    deadline = time.monotonic() + seconds
    served = 0

    async def client(url: str) -> None:
        nonlocal served
        while time.monotonic() < deadline:
            async with http.post(url, json=BODY, headers=headers) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"warm-up: unexpected {answer.status}")
                served += 1

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        await asyncio.gather(*(client(urls[i % len(urls)]) for i in range(clients)))
    return served


async def _quiet(bootstrap: str, groups: list[str], wait_s: float = 120.0) -> float:
    """Seconds until every consumer group of the request log has committed its end.

    A round is a burst: the guard worker (Presidio, the dearest stage per request) is still
    working through the last one for seconds after it, and a round started meanwhile
    would measure the leftovers of the previous one, not its own admission path."""
    started = time.monotonic()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = await watch_progress(bootstrap)  # any consumer can read end offsets
    await admin.start()
    try:
        parts = [TopicPartition(REQUESTS.name, p) for p in range(REQUESTS.partitions)]
        ends = await consumer.end_offsets(parts)
        while time.monotonic() - started < wait_s:
            committed = [
                await admin.list_consumer_group_offsets(g, partitions=parts) for g in groups
            ]
            if all(
                ends[tp] == 0 or (tp in offsets and offsets[tp].offset >= ends[tp])
                for offsets in committed
                for tp in parts
            ):
                return time.monotonic() - started
            await asyncio.sleep(0.25)
        raise RuntimeError(f"consumer groups {groups} did not reach the end of {REQUESTS.name}")
    finally:
        await admin.close()
        await consumer.stop()


async def _metrics(configs: list[tuple[TollgateConfig, Path]]) -> list[str]:
    async with httpx.AsyncClient(timeout=10) as http:
        return [
            (await http.get(f"http://{c.ingress.host}:{c.ingress.port}/metrics")).text
            for c, _ in configs
        ]


async def _measure(  # noqa: PLR0917
    configs: list[tuple[TollgateConfig, Path]],
    clients: int,
    seconds: float,
    budget: Decimal,
    one: Decimal,
    budget_requests: int,
    rate: float,
    warmup_s: float,
    rounds: int = 1,
) -> dict[str, Any]:
    warmed = 0
    config = configs[0][0]
    bootstrap = config.kafka.bootstrap_servers
    if warmup_s > 0:
        print(f"==> warming up for {warmup_s:.0f} s (another tenant)", file=sys.stderr)
        warmed = await _warm_up(configs, clients, warmup_s)
    app_id = config.processors.app_id
    groups = [app_id, f"{app_id}-guards"] if config.guards.analysis.enabled else [app_id]
    first = baseline = await _metrics(configs)
    measured_from_ms = int(time.time() * 1000)
    results = []
    for index in range(rounds):
        waited = await _quiet(bootstrap, groups)
        print(
            f"==> measuring (round {index + 1} of {rounds}; "
            f"the processors caught up after {waited:.1f} s)",
            file=sys.stderr,
        )
        result = await _round(configs, index, clients, seconds, budget, budget_requests, rate)
        result["quiet_wait_s"] = round(waited, 1)
        expositions = await _metrics(configs)
        results.append(result | _lag_ms(expositions, baseline))
        baseline = expositions
    replicas = [
        float(line.rsplit(" ", 1)[1])
        for text in baseline
        for line in text.splitlines()
        if line.startswith("tollgate_admission_replicas ")
    ]
    tenants = {_round_tenant(config.home, i) for i in range(rounds)}
    stages = await _lag_stages(config.kafka.bootstrap_servers, tenants, measured_from_ms)
    pooled = {"overshoot_requests_max": max(r["overshoot_requests"] for r in results)}
    pooled |= _lag_ms(baseline, first) | {"lag_stages": stages}
    return {
        "ingress_processes": len(configs),
        "clients": clients,
        "warmup_s": warmup_s,
        "warmup_requests": warmed,
        "budget_usd": float(budget),
        "budget_requests": budget_requests,
        "answer_usd": float(one),
        "replicas_seen": replicas,
        "rounds": results,
        **({"all_rounds": pooled} if rounds > 1 else {**results[0], **pooled}),
    }


def _lag_ms(expositions: list[str], baseline: list[str]) -> dict[str, float]:
    """The lag p50/p99 of what the histograms counted since ``baseline``."""
    p50, p99 = _lag_quantiles(expositions, (0.5, 0.99), baseline)
    return {
        "admission_lag_p50_ms": round(p50 * 1000, 1),
        "admission_lag_p99_ms": round(p99 * 1000, 1),
    }


async def _round(  # noqa: PLR0917
    configs: list[tuple[TollgateConfig, Path]],
    index: int,
    clients: int,
    seconds: float,
    budget: Decimal,
    budget_requests: int,
    rate: float,
) -> dict[str, Any]:
    """One tenant's clients against its own fresh budget, until it refuses them all."""
    config = configs[0][0]
    tally = Tally()
    interval_s = clients / rate if rate else 0.0
    urls = [f"http://{c.ingress.host}:{c.ingress.port}/v1/chat/completions" for c, _ in configs]
    price = _price(config)
    key = _round_key(index)
    started = time.monotonic()
    deadline = started + seconds
    # aiohttp, not httpx: the clients share two cores with everything they measure
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        await asyncio.gather(
            *(
                _client(
                    http,
                    urls[i % len(urls)],
                    i % len(urls),
                    tally,
                    deadline,
                    price,
                    interval_s,
                    key,
                )
                for i in range(clients)
            )
        )
    elapsed = time.monotonic() - started
    await asyncio.sleep(1.5)  # the last responses reach the state and the lag histograms
    tenant = _round_tenant(config.home, index)
    counted = await _processors_spent(config, f"budget:{_round_budget(index)}:{tenant}")
    return {
        "seconds": round(elapsed, 2),
        "served": tally.served,
        "served_per_ingress": tally.per_ingress,
        "share_waits": tally.share_waits,
        "served_usd_by_clients": float(tally.usd),
        "spent_usd_by_processors": float(counted),
        "overshoot_requests": max(tally.served - budget_requests, 0),
        "overshoot_usd": float(max(tally.usd - budget, Decimal(0))),
        "undershoot_requests": max(budget_requests - tally.served, 0),
        "budget_enforced": tally.refused == clients,
        "throughput_req_per_s": round(tally.served / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--ingress", type=int, default=2, help="ingress processes")
    parser.add_argument("--budget-requests", type=int, default=300)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat with a fresh tenant and budget each time; lag pooled over all rounds",
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="give up after this")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="requests/s over all clients (0 = as fast as answered)",
    )
    parser.add_argument(
        "--warmup-s",
        type=float,
        default=20.0,
        help="seconds of another tenant's traffic first (0 = measure a cold stack)",
    )
    parser.add_argument(
        "--no-stream-guards",
        action="store_true",
        help="turn the processors' Presidio analysis off (guards.analysis.enabled: false)",
    )
    parser.add_argument(
        "--share-wait-s",
        type=float,
        default=1.0,
        help="admission.share_wait_s: how long an ingress holds a request refused only for "
        "its share (0 = answer 429 at once, and the clients retry after 20 ms)",
    )
    args = parser.parse_args()
    report = run(
        args.clients,
        args.ingress,
        args.budget_requests,
        args.seconds,
        not args.no_stream_guards,
        args.rate,
        args.warmup_s,
        args.rounds,
        args.share_wait_s,
    )
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


if __name__ == "__main__":
    main()
