"""How many request events per second does one metering worker apply, and at what CPU cost?

    .venv/bin/python -m tests.bench.metering_throughput [--requests 5000] [--tenants 1]
        [--rate EVENTS_PER_S]

Starts a real Kafka broker and the metering worker (``tollgate worker``, with a tenant
budget, a per-key rate limit and the default alerts, as in production), then
writes ``--requests`` request pairs (``request.received`` + ``response.completed`` with
usage, the two events the ingress publishes per answer) to ``tollgate.requests`` as fast
as the producer goes. It prints the events per second from the first write to the
progress mark covering the last one, and the worker's CPU time per event (from
``/proc``), which is the figure that does not depend on what else shares the cores.

The admission lag at saturation (``tests.bench.admission_overshoot``) is this worker
falling behind, so this is the number to move.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from infra.processes import terminate_group
from schemas.topics import REQUESTS
from tests.bench.stages import spawn, wait_worker_ready
from tests.events import answered
from tests.harness import running_broker, write_config
from tests.kafka_io import await_progress, watch_progress

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children that were waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / TICKS


def _pairs(requests: int, tenants: int, key_id: str) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(requests):
        tenant = f"bench-{i % tenants}"
        rid = f"req-{i:08d}"
        received, completed = answered(
            tenant,
            rid,
            key_id=key_id,
            messages=[{"role": "user", "content": f"Benchmark me, briefly. {i}"}],
            est_usd="0.0000123",
            est_tokens=40,
            outputs=["A short answer of about sixteen tokens for the benchmark to count."],
            usage={"prompt_tokens": 14, "completion_tokens": 16, "total_tokens": 30},
            deployment="gpt-4o-mini",
        )
        out += [(tenant.encode(), received.encode()), (tenant.encode(), completed.encode())]
    return out


async def _produce(
    bootstrap: str, records: list[tuple[bytes, bytes]], rate: float
) -> dict[int, int]:
    """Writes the records (at ``rate`` events/s, or as fast as the producer goes); returns
    the last offset written per partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    await producer.start()
    try:
        futures = []
        started = time.monotonic()
        for i, (key, value) in enumerate(records):
            if rate and i % 10 == 0:
                await asyncio.sleep(max(started + i / rate - time.monotonic(), 0))
            futures.append(await producer.send(REQUESTS.name, value, key=key))
        last: dict[int, int] = {}
        for future in futures:
            meta = await future
            last[meta.partition] = max(last.get(meta.partition, -1), meta.offset)
        return last
    finally:
        await producer.stop()


async def _measure(
    bootstrap: str, worker: int, requests: int, tenants: int, rate: float
) -> dict[str, Any]:
    records = _pairs(requests, tenants, key_id="k-bench")
    consumer = await watch_progress(bootstrap)
    try:
        cpu_before = _cpu_s(worker)
        started = time.monotonic()
        last = await _produce(bootstrap, records, rate)
        produced = time.monotonic()
        print(f"... waiting for the worker to apply {len(records)} events", file=sys.stderr)
        done = await await_progress(consumer, last, 300)
        cpu = _cpu_s(worker) - cpu_before
    finally:
        await consumer.stop()
    events = len(records)
    return {
        "requests": requests,
        "events": events,
        "tenants": tenants,
        "rate_events_per_s": rate or "as fast as produced",
        "produce_s": round(produced - started, 2),
        "apply_s": round(done - started, 2),
        "events_per_s": round(events / (done - started)),
        "worker_cpu_s": round(cpu, 2),
        "worker_cpu_us_per_event": round(cpu / events * 1e6),
    }


def run(requests: int, tenants: int, rate: float) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="tollgate-metering-"))
    with running_broker(home / "kafka") as broker:
        config, path = write_config(
            home / "gw",
            broker.bootstrap_servers,
            guards={"analysis": {"enabled": False}},
            budgets=[{"name": "bench", "scope": "tenant", "max_usd": "1000", "thresholds": [0.5]}],
            rate_limits=[{"name": "keys", "scope": "key", "requests_per_minute": 10_000_000}],
        )
        log = home / "worker.log"
        worker = spawn(["worker", "--config", str(path)], log)
        try:
            print("==> starting the metering worker", file=sys.stderr)
            wait_worker_ready(config, worker, log)
            time.sleep(2)  # partitions assigned, first progress out
            print(f"==> {requests} request pairs (worker pid {worker.pid})", file=sys.stderr)
            return asyncio.run(
                _measure(broker.bootstrap_servers, worker.pid, requests, tenants, rate)
            )
        finally:
            terminate_group(worker.pid, 15)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--tenants", type=int, default=1, help="tenants (partition keys)")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="events/s to write (0 = a backlog at once)"
    )
    args = parser.parse_args()
    report = run(args.requests, args.tenants, args.rate)
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
