"""Starting Tollgate's stages for a benchmark: each as `tollgate <stage>` in its own
process group, output to a log file, so a bench measures the real commands."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from processors.main import ready_file
from schemas.config import TollgateConfig


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "infra.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_worker_ready(
    config: TollgateConfig, worker: subprocess.Popen[bytes], log: Path, wait_s: float = 120.0
) -> None:
    """Until the metering worker says it is ready (its tables recovered, its tokenizers in)."""
    deadline = time.monotonic() + wait_s
    while not ready_file(config).exists():
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker not ready in {wait_s:.0f} s; see {log}")
        time.sleep(0.2)
