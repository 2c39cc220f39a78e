"""Runs the processors as a Faust worker (``tollgate worker``)."""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path

import faust

from processors.app import Role, create_app
from processors.cpu_priority import change_cpu_priority
from schemas.config import TollgateConfig
from schemas.tokens import load_encodings

GIL_SWITCH_S = 0.0005
"""How long a thread may hold the GIL while another waits (CPython's default: 5 ms).

The guard worker runs Presidio in executor threads; at 5 ms its event loop (the consumer,
heartbeats, the verdicts) waits up to 5 ms for the GIL each time it wakes. The figures
below are from when Faust's Kafka consumer still ran in a thread of its own (see
``processors.kafka_transport``): each fetch it sent, and each wake-up it got from the
agents' thread, gave up the GIL and waited out the other thread's interval. Profiled on
the metering worker at saturation, a quarter of its busy samples sat in those socket
writes and wake-ups, and events reached the agent 50-120 ms (p50) after the broker
appended them. At 0.5 ms the processing stage's p50 fell from 171-205 ms to 116-135 ms and
the pooled admission-lag p99 from 812-1,293 ms to 493-656 ms
(``tests.bench.admission_overshoot --rounds 4``, two runs before, three after)."""


class ReadyFileWorker(faust.Worker):
    """Touches a file once tables are recovered and agents run, so supervisors can wait
    for real readiness instead of guessing from process liveness."""

    def __init__(self, app: faust.App, ready_file: Path, **kwargs: object) -> None:
        super().__init__(app, **kwargs)  # type: ignore[arg-type]
        self.ready_file = ready_file
        ready_file.unlink(missing_ok=True)

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        # mode's logging setup leaves the root logger at DEBUG whatever ``loglevel`` says,
        # and aiokafka and faust then build a debug record for every message they send:
        # a tenth of the worker's CPU for log lines nobody sees.
        super().on_setup_root_logger(logger, level)
        logger.setLevel(level or logging.WARNING)

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        # Faust, the tables and the models loaded by now live as long as the process: out
        # of the collector's sight, a full collection no longer walks them (measured on the
        # metering worker: 130-140 ms stalls, each one straight into the admission lag)
        gc.collect()
        gc.freeze()
        sys.setswitchinterval(GIL_SWITCH_S)
        self.ready_file.parent.mkdir(parents=True, exist_ok=True)
        self.ready_file.touch()

    async def on_stop(self) -> None:
        self.ready_file.unlink(missing_ok=True)
        await super().on_stop()


def ready_file(config: TollgateConfig, role: Role = "metering") -> Path:
    return config.run_dir / ("worker.ready" if role == "metering" else "guard-worker.ready")


def run_worker(config: TollgateConfig, loglevel: str = "warn", role: Role = "metering") -> None:
    """Blocks until SIGTERM/SIGINT; Faust commits offsets and flushes tables on the way out."""
    # before Faust starts its threads: they inherit the nice value; logging is not set up
    # yet (Faust does it), so the stage's log file gets this line
    nice = config.guards.analysis.cpu_nice if role == "guards" else config.processors.cpu_nice
    print(f"{role} worker: {change_cpu_priority(nice)}", file=sys.stderr)
    app = create_app(config, role)
    load_encodings()  # before readiness: the first events would wait for them
    worker = ReadyFileWorker(
        app, ready_file(config, role), loglevel=loglevel, quiet=True, redirect_stdouts=False
    )
    worker.execute_from_commandline()
