"""Did a change make the ingress cheaper? Two ingress trees, this one and a git ref, side by
side on one broker and one fake upstream, driven in alternating windows.

    .venv/bin/python -m tests.bench.ingress_ab BASE_REF [--rounds 5] [--seconds 6]

Separate ``gateway_overhead`` runs drift by ±20 µs of ingress CPU a request with the
machine, more than most single changes win; windows taken in turn (A B, B A, ...) see the
same machine, so the per-pair difference is what the change is worth. Prints each window
(ingress CPU a request, req/s, p50, p99), the medians and the pairwise differences
(B - A, B being this tree), and a JSON summary. ``BASE_REF`` is checked out into a
temporary git worktree, removed at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from infra.processes import terminate_group, wait_port
from tests.bench.gateway_overhead import _cpu_s, _load_in_process, _per_request
from tests.harness import TEST_KEY, free_port, running_broker, write_config

ROOT = Path(__file__).resolve().parents[2]
AUTH = {"authorization": f"Bearer {TEST_KEY}", "content-type": "application/json"}


def _spawn(tree: Path, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=tree,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _window(url: str, pid: int, seconds: float) -> dict[str, float]:
    cpu = _cpu_s(pid)
    result = _load_in_process(url, AUTH, 16, seconds)
    result["cpu_us_per_request"] = _per_request(_cpu_s(pid) - cpu, result)
    return result


def compare(trees: dict[str, Path], home: Path, rounds: int, seconds: float) -> dict[str, object]:
    processes: list[subprocess.Popen[bytes]] = []
    with running_broker(home / "kafka") as broker:
        try:
            port = free_port()
            configs = {
                name: write_config(
                    home / name,
                    broker.bootstrap_servers,
                    fake_upstream={"port": port},
                    providers={
                        "fake": {"kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1"}
                    },
                    deployments=[{"model": "gpt-4o-mini", "provider": "fake"}],
                )
                for name in trees
            }
            upstream_args = ["-m", "infra.cli", "upstream", "--config", str(configs["A"][1])]
            processes.append(_spawn(trees["A"], upstream_args, home / "upstream.log"))
            pids, urls = {}, {}
            for name, tree in trees.items():
                config, path = configs[name]
                args = ["-m", "infra.cli", "ingress", "--config", str(path)]
                processes.append(_spawn(tree, args, home / f"ingress-{name}.log"))
                pids[name] = processes[-1].pid
                urls[name] = f"http://127.0.0.1:{config.ingress.port}/v1/chat/completions"
            wait_port("127.0.0.1", port, "fake upstream")
            for name in trees:
                wait_port("127.0.0.1", configs[name][0].ingress.port, f"ingress {name}")
            print("==> warming up both ingresses and the broker (15 s each)", file=sys.stderr)
            for name in trees:
                _load_in_process(urls[name], AUTH, 16, 15)
            windows: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
            for index in range(rounds):
                for name in ("A", "B") if index % 2 == 0 else ("B", "A"):
                    result = _window(urls[name], pids[name], seconds)
                    windows[name].append(result)
                    print(
                        f"round {index} {name}: {result['cpu_us_per_request']:.0f} µs/request"
                        f" {result['req_per_s']:.0f} req/s p50 {result['p50_ms']:.2f}"
                        f" p99 {result['p99_ms']:.2f} ms",
                        file=sys.stderr,
                    )
        finally:
            for process in reversed(processes):
                terminate_group(process.pid, 15)
    return summary(windows)


def summary(windows: dict[str, list[dict[str, float]]]) -> dict[str, object]:
    """Medians per tree and the per-round differences B - A (CPU a request)."""
    cpu = {name: [w["cpu_us_per_request"] for w in runs] for name, runs in windows.items()}
    rate = {name: [w["req_per_s"] for w in runs] for name, runs in windows.items()}
    differences = [round(b - a, 1) for a, b in zip(cpu["A"], cpu["B"], strict=True)]
    return {
        "cpu_us_per_request": {name: statistics.median(v) for name, v in cpu.items()},
        "req_per_s": {name: statistics.median(v) for name, v in rate.items()},
        "cpu_difference_per_round_us": differences,
        "cpu_difference_median_us": statistics.median(differences),
        "rounds_where_b_is_cheaper": sum(d < 0 for d in differences),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("base_ref", help="the git ref to compare this tree against (A)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="tollgate-ab-"))
    base = home / "base-tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base), args.base_ref],
        check=True,
    )
    try:
        result = compare({"A": base, "B": ROOT}, home, args.rounds, args.seconds)
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False
        )
    print(orjson.dumps({"base_ref": args.base_ref, **result}, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
