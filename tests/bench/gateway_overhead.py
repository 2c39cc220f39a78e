"""What Tollgate adds on top of the provider: the fake upstream called directly, through a
bare proxy on the same HTTP stack (``tests.bench.bare_proxy``: the floor any ingress on
uvicorn and aiohttp pays on this machine) and through Tollgate (event publishing to a real
Kafka on), side by side in one run.

    .venv/bin/python -m tests.bench.gateway_overhead [--seconds 10] [--concurrency 16]
                                                     [--upstream-ttft-ms 0] [--warmup-s 20]

Prints throughput and p50/p99 latency for both and the ratios, and the CPU time each server
process spent per request (read from /proc: the honest per-worker cost, whatever else runs
on the machine). One ingress worker process; the load generator runs in its own process.
``--upstream-ttft-ms`` makes the fake answer after that delay, like a real provider.
Before measuring, Tollgate is driven for ``--warmup-s`` with the same load: a fresh broker
spends a third of a core JIT-compiling for its first minute (production brokers are
warm), and a cold one made the Tollgate leg cost ~650 µs of ingress CPU a request where a
warm one costs ~460.
Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from infra.processes import terminate_group, wait_port
from tests.bench.loadgen import run_load
from tests.harness import TEST_KEY, free_port, running_broker, write_config

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


def _cpu_s(group: int) -> float:
    """User + system CPU seconds so far of every live process in a process group (a stage
    is spawned as its own group: with workers, the supervisor and its children)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == group:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


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
    parser.add_argument("--upstream-ttft-ms", type=float, default=0.0)
    parser.add_argument("--workers", type=int, default=1, help="ingress worker processes")
    parser.add_argument(
        "--warmup-s", type=float, default=20.0, help="Tollgate (and the broker) driven first"
    )
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    processes: list[subprocess.Popen[bytes]] = []
    with running_broker(home / "kafka") as broker:
        try:
            _compare(
                broker.bootstrap_servers,
                home,
                processes,
                args.concurrency,
                args.seconds,
                args.upstream_ttft_ms,
                args.workers,
                args.warmup_s,
            )
        finally:
            for process in reversed(processes):
                terminate_group(process.pid, 15)


def _compare(  # noqa: PLR0917
    bootstrap: str,
    home: Path,
    processes: list[subprocess.Popen[bytes]],
    concurrency: int,
    seconds: float,
    ttft_ms: float,
    workers: int = 1,
    warmup_s: float = 20.0,
) -> None:
    """Start upstream and ingress, then drive both with the same load, one after the other."""
    fault = {"x-fake-ttft-ms": str(ttft_ms)} if ttft_ms else {}
    port = free_port()
    config, path = write_config(
        home / "gw",
        bootstrap,
        fake_upstream={"port": port},
        ingress={"workers": workers},
        providers={
            "fake": {"kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "headers": fault}
        },
        deployments=[{"model": "gpt-4o-mini", "provider": "fake"}],
    )
    upstream_port, bare_port = config.fake_upstream.port, free_port()
    upstream_url = f"{config.fake_upstream.url}/v1/chat/completions"
    processes.append(
        _spawn(["-m", "infra.cli", "upstream", "--config", str(path)], home / "upstream.log")
    )
    bare_args = [str(bare_port), upstream_url, *(f"{k}={v}" for k, v in fault.items())]
    processes.append(_spawn(["-m", "tests.bench.bare_proxy", *bare_args], home / "bare.log"))
    processes.append(
        _spawn(["-m", "infra.cli", "ingress", "--config", str(path)], home / "ingress.log")
    )
    wait_port("127.0.0.1", upstream_port, "fake upstream")
    wait_port("127.0.0.1", bare_port, "bare proxy")
    wait_port("127.0.0.1", config.ingress.port, "ingress")
    print(
        f"==> {concurrency} connections, {seconds:.0f} s per run",
        file=sys.stderr,
    )
    auth = {"authorization": f"Bearer {TEST_KEY}", "content-type": "application/json"}
    upstream_pid, bare_pid, ingress_pid = (p.pid for p in processes[-3:])
    gateway_url = f"http://127.0.0.1:{config.ingress.port}/v1/chat/completions"
    if warmup_s > 0:
        print(f"==> warming up Tollgate and the broker for {warmup_s:.0f} s", file=sys.stderr)
        _load_in_process(gateway_url, auth, concurrency, warmup_s)
    print("==> direct: fake upstream", file=sys.stderr)
    cpu = _cpu_s(upstream_pid)
    direct = _load_in_process(upstream_url, {**auth, **fault}, concurrency, seconds)
    direct["server_cpu_us_per_request"] = _per_request(_cpu_s(upstream_pid) - cpu, direct)
    print("==> through the bare proxy (the stack's floor)", file=sys.stderr)
    cpu = _cpu_s(bare_pid)
    bare = _load_in_process(
        f"http://127.0.0.1:{bare_port}/v1/chat/completions", auth, concurrency, seconds
    )
    bare["server_cpu_us_per_request"] = _per_request(_cpu_s(bare_pid) - cpu, bare)
    print("==> through Tollgate (events to Kafka on)", file=sys.stderr)
    cpu = _cpu_s(ingress_pid)
    gateway = _load_in_process(gateway_url, auth, concurrency, seconds)
    gateway["server_cpu_us_per_request"] = _per_request(_cpu_s(ingress_pid) - cpu, gateway)
    report = {
        "upstream_ttft_ms": ttft_ms,
        "ingress_workers": workers,
        "warmup_s": warmup_s,
        "concurrency": concurrency,
        "direct": direct,
        "bare_proxy": bare,
        "tollgate": gateway,
        "bare_proxy_vs_direct": _versus(bare, direct),
        "tollgate_vs_direct": _versus(gateway, direct),
        "tollgate_vs_bare_proxy": _versus(gateway, bare),
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


def _versus(run: dict[str, float], base: dict[str, float]) -> dict[str, float]:
    return {
        "throughput_ratio": round(run["req_per_s"] / base["req_per_s"], 3),
        "added_p50_ms": round(run["p50_ms"] - base["p50_ms"], 3),
        "added_p99_ms": round(run["p99_ms"] - base["p99_ms"], 3),
    }


def _per_request(cpu_s: float, result: dict[str, float]) -> float:
    """CPU microseconds per request (warm-up requests included in the CPU, so a bit high)."""
    return round(cpu_s * 1e6 / max(1.0, result["requests"]), 1)


if __name__ == "__main__":
    main()
