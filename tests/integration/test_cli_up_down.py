"""The README's run command: `tollgate up` (embedded Kafka included), a request, `tollgate
sql`, then `tollgate down` stops every process it started."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from infra.processes import alive
from infra.stack import local_kafka
from tests.harness import TEST_KEY, free_port, write_config

pytestmark = pytest.mark.integration


def _cli(*args: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_up_serves_records_and_down_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    config, path = write_config(
        tmp_path / "up",
        f"127.0.0.1:{port}",
        kafka={"embedded": True, "controller_port": free_port()},
    )
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "up", "--config", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while "Tollgate is up" not in (tmp_path / "up.log").read_text():
            assert up.poll() is None, (tmp_path / "up.log").read_text()
            assert time.monotonic() < deadline, "tollgate up did not come up in 180 s"
            time.sleep(0.3)
        started = (tmp_path / "up.log").read_text()
        for stage in (
            "starting Kafka",
            "creating topics",
            "starting upstream",
            "starting sink",
            "starting worker",
            "starting ingress",
        ):
            assert stage in started

        url = f"http://127.0.0.1:{config.ingress.port}/v1/chat/completions"
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
        answer = httpx.post(
            url, json=body, headers={"authorization": f"Bearer {TEST_KEY}"}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        rid = answer.headers["x-request-id"]
        total = answer.json()["usage"]["total_tokens"]

        sql = f"SELECT total_tokens FROM usage FINAL WHERE request_id = '{rid}'"
        deadline = time.monotonic() + 30
        while True:
            result = _cli("sql", "--json", sql, path=path)
            if result.returncode == 0 and orjson.loads(result.stdout)["rows"]:
                break
            assert time.monotonic() < deadline, result.stdout + result.stderr
            time.sleep(0.5)
        assert orjson.loads(result.stdout)["rows"] == [[total]]

        broker_pid = local_kafka(config).pid()
        assert broker_pid is not None
        down = _cli("down", path=path)
        assert down.returncode == 0, down.stderr
        assert up.wait(timeout=60) == 0
        assert not alive(broker_pid)
        assert not (config.run_dir / "stack.pid").exists()
        stopped = (tmp_path / "up.log").read_text()
        for stage in ("stopping ingress", "stopping worker", "stopping sink", "stopping Kafka"):
            assert stage in stopped
    finally:
        if up.poll() is None:
            up.kill()
        local_kafka(config).stop()
        log.close()
