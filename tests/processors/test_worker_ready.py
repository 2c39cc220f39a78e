"""Once started, the worker says so with its ready file, moves its startup heap (Faust,
tables, models) out of the collector's sight (full collections over it stalled the
metering worker 130-140 ms at a time, straight into the admission lag) and shortens the
GIL's switch interval (Faust's consumer thread waited out the agents' 5 ms turns)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from processors.app import create_app
from processors.main import GIL_SWITCH_S, ReadyFileWorker, ready_file
from tests.harness import free_port, write_config


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    gc.unfreeze()
    interval = sys.getswitchinterval()
    yield
    gc.unfreeze()
    sys.setswitchinterval(interval)


async def test_a_started_worker_is_ready_with_its_heap_frozen_and_short_gil_turns(
    tmp_path: Path,
) -> None:
    config, _ = write_config(tmp_path / "worker", f"127.0.0.1:{free_port()}")
    ready = ready_file(config)
    worker = ReadyFileWorker(
        create_app(config), ready, loglevel="warn", quiet=True, redirect_stdouts=False
    )
    assert not ready.exists() and gc.get_freeze_count() == 0
    assert sys.getswitchinterval() > GIL_SWITCH_S  # CPython's 5 ms
    await worker.on_startup_finished()
    assert ready.exists()
    assert gc.get_freeze_count() > 1000
    assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_S)
    await worker.on_stop()
    assert not ready.exists()
