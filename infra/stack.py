"""``tollgate up``: the whole stack on one machine, supervised, stopped in order.

Start order: Kafka (embedded) → topics → fake upstream → sink (owns chDB) → processors →
ingress. Stop order is the reverse, so the ingress flushes its events to Kafka, the
processors turn them into usage, and the sink writes what it consumed before it exits.
Each stage is a child process running ``tollgate <stage>`` and logs to ``<home>/run/``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from infra.console import say, step
from infra.kafka.broker import BrokerSettings, LocalKafka
from infra.processes import alive, terminate_group
from infra.topics import all_topics, ensure_topics
from schemas.config import TollgateConfig


class StackError(RuntimeError):
    pass


@dataclass
class Stage:
    name: str
    health_url: str | None = None
    ready_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None


def local_kafka(config: TollgateConfig) -> LocalKafka:
    host, _, port = config.kafka.bootstrap_servers.split(",")[0].rpartition(":")
    settings = BrokerSettings(
        home=config.kafka_dir,
        host=host or "127.0.0.1",
        port=int(port),
        controller_port=config.kafka.controller_port,
    )
    return LocalKafka(settings)


class Stack:
    def __init__(
        self, config: TollgateConfig, config_path: Path | None, with_upstream: bool
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.kafka = local_kafka(config) if config.kafka.embedded else None
        ingress = f"http://{config.ingress.host}:{config.ingress.port}"
        sink = f"http://{config.sink.query_host}:{config.sink.query_port}"
        self.stages = [
            Stage("sink", f"{sink}/health"),
            Stage("worker", ready_file=config.run_dir / "worker.ready"),
            *(
                [Stage("guard-worker", ready_file=config.run_dir / "guard-worker.ready")]
                if config.guards.analysis.enabled
                else []
            ),
            Stage("ingress", f"{ingress}/health"),
        ]
        if with_upstream:
            self.stages.insert(0, Stage("upstream", f"{config.fake_upstream.url}/health"))
        self.pid_file = config.run_dir / "stack.pid"

    def up(self) -> None:
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        if self.kafka is not None:
            self.kafka.start()
        with step("creating topics"):
            asyncio.run(ensure_topics(self.config.kafka.bootstrap_servers, all_topics(self.config)))
        for stage in self.stages:
            self._start(stage)
        self.pid_file.write_text(str(os.getpid()))

    def _start(self, stage: Stage) -> None:
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.config.run_dir / f"{stage.name}.log"
        command = [sys.executable, "-m", "infra.cli", stage.name]
        if self.config_path is not None:
            command += ["--config", str(self.config_path)]
        if stage.ready_file is not None:
            stage.ready_file.unlink(missing_ok=True)
        with step(f"starting {stage.name} (log: {log_path})"), log_path.open("ab") as log:
            stage.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            self._wait_healthy(stage, log_path)

    def _wait_healthy(self, stage: Stage, log_path: Path, timeout: float = 60.0) -> None:
        assert stage.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if stage.process.poll() is not None:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
                raise StackError(
                    f"{stage.name} exited with code {stage.process.returncode}:\n{tail}"
                )
            if stage.ready_file is not None and stage.ready_file.exists():
                return
            if stage.health_url is not None and _get_ok(stage.health_url):
                return
            time.sleep(0.2)
        raise StackError(f"{stage.name} was not healthy within {timeout:.0f} s; see {log_path}")

    def wait(self) -> None:
        """Block until a signal arrives or a stage dies; then the caller stops the stack."""
        stopping = False

        def on_signal(signum: int, _: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        while not stopping:
            for stage in self.stages:
                if stage.process is not None and stage.process.poll() is not None:
                    log = self.config.run_dir / f"{stage.name}.log"
                    code = stage.process.returncode
                    say(f"!! {stage.name} exited with code {code}; see {log}. Stopping the stack.")
                    return
            time.sleep(0.3)

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def start_stage(self, name: str) -> None:
        self._start(self.stage(name))

    def stop_stage(self, name: str, timeout: float = 30.0) -> None:
        stage = self.stage(name)
        if stage.process is not None and stage.process.poll() is None:
            with step(f"stopping {stage.name}"):
                terminate_group(stage.process.pid, timeout)
                stage.process.wait()

    def down(self) -> None:
        for stage in reversed(self.stages):
            self.stop_stage(stage.name)
        if self.kafka is not None:
            self.kafka.stop()
        self.pid_file.unlink(missing_ok=True)


def _get_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def stop_running_stack(config: TollgateConfig, timeout: float = 90.0) -> bool:
    """``tollgate down``: signal the ``tollgate up`` process, which stops its stages."""
    pid_file = config.run_dir / "stack.pid"
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        pid_file.unlink(missing_ok=True)
        return local_kafka(config).stop() if config.kafka.embedded else False
    with step(f"stopping the stack (pid {pid})"):
        deadline = time.monotonic() + timeout
        # `up` removes its pid file once every stage and Kafka have stopped; that, not the
        # pid alone (an exited but unreaped process still answers kill 0), means done.
        while time.monotonic() < deadline:
            if not pid_file.exists() or not alive(pid):
                return True
            time.sleep(0.2)
        raise StackError(f"the stack (pid {pid}) did not stop within {timeout:.0f} s; kill it")
    return True
