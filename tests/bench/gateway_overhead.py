"""What Tollgate adds on top of the provider: the fake upstream called directly vs. through
Tollgate (event publishing to a real Kafka on), side by side in one run.

    .venv/bin/python -m tests.bench.gateway_overhead [--seconds 10] [--concurrency 16]

Prints throughput and p50/p99 latency for both and the ratios. One ingress worker process;
the load generator runs in its own process. Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from infra.processes import terminate_group, wait_port
from tests.bench.loadgen import run_load
from tests.harness import TEST_KEY, running_broker, write_config

BODY = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Benchmark me, briefly."}],
    }
)


def _load_in_process(
    url: str, headers: dict[str, str], concurrency: int, seconds: float
) -> dict[str, float]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_load_entry, (url, headers, concurrency, seconds))


def _load_entry(
    url: str, headers: dict[str, str], concurrency: int, seconds: float
) -> dict[str, float]:
    result = asyncio.run(run_load(url, BODY, headers, concurrency=concurrency, seconds=seconds))
    return result.summary()


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    processes: list[subprocess.Popen[bytes]] = []
    with running_broker(home / "kafka") as broker:
        try:
            _compare(broker.bootstrap_servers, home, processes, args.concurrency, args.seconds)
        finally:
            for process in reversed(processes):
                terminate_group(process.pid, 15)


def _compare(
    bootstrap: str,
    home: Path,
    processes: list[subprocess.Popen[bytes]],
    concurrency: int,
    seconds: float,
) -> None:
    """Start upstream and ingress, then drive both with the same load, one after the other."""
    config, path = write_config(home / "gw", bootstrap)
    upstream_port = config.fake_upstream.port
    processes.append(
        _spawn(["-m", "infra.cli", "upstream", "--config", str(path)], home / "upstream.log")
    )
    processes.append(
        _spawn(["-m", "infra.cli", "ingress", "--config", str(path)], home / "ingress.log")
    )
    wait_port("127.0.0.1", upstream_port, "fake upstream")
    wait_port("127.0.0.1", config.ingress.port, "ingress")
    print(
        f"==> {concurrency} connections, {seconds:.0f} s per run",
        file=sys.stderr,
    )
    auth = {"authorization": f"Bearer {TEST_KEY}", "content-type": "application/json"}
    print("==> direct: fake upstream", file=sys.stderr)
    direct = _load_in_process(
        f"{config.fake_upstream.url}/v1/chat/completions", auth, concurrency, seconds
    )
    print("==> through Tollgate (events to Kafka on)", file=sys.stderr)
    gateway = _load_in_process(
        f"http://127.0.0.1:{config.ingress.port}/v1/chat/completions",
        auth,
        concurrency,
        seconds,
    )
    report = {
        "direct": direct,
        "tollgate": gateway,
        "throughput_ratio": round(gateway["req_per_s"] / direct["req_per_s"], 3),
        "added_p50_ms": round(gateway["p50_ms"] - direct["p50_ms"], 3),
        "added_p99_ms": round(gateway["p99_ms"] - direct["p99_ms"], 3),
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
