"""``ingress.workers: 2``: two processes on one port (SO_REUSEPORT), both serving, all
requests answered and published, and a clean stop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from infra.fake_upstream.server import BackgroundFakeUpstream
from infra.kafka.broker import LocalKafka
from infra.processes import terminate_group, wait_port
from schemas.topics import REQUESTS
from tests.harness import TEST_KEY, write_config
from tests.kafka_io import collect

pytestmark = pytest.mark.integration


@contextmanager
def ingress_process(path: Path, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``tollgate ingress`` as a child process; stopped (the whole group) on exit."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "ingress", "--config", str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            started = time.monotonic()
            terminate_group(process.pid, 30)
            process.wait(5)
            assert time.monotonic() - started < 20, "the workers did not stop in time"


async def test_two_workers_share_the_port(kafka: LocalKafka, tmp_path: Path) -> None:
    with BackgroundFakeUpstream() as fake:
        config, path = write_config(
            tmp_path / "gw",
            kafka.bootstrap_servers,
            ingress={"workers": 2},
            providers={"fake": {"kind": "openai", "base_url": fake.base_url}},
            deployments=[{"model": "gpt-4o-mini", "provider": "fake"}],
        )
        with ingress_process(path, tmp_path / "ingress.log"):
            wait_port("127.0.0.1", config.ingress.port, "ingress")
            url = f"http://127.0.0.1:{config.ingress.port}"
            pids = set()
            for _ in range(60):  # new connections land on either worker
                async with httpx.AsyncClient() as http:
                    health = (await http.get(f"{url}/health?detail=1")).json()
                pids.add(health["worker"]["pid"])
                if len(pids) == 2:
                    break
            assert len(pids) == 2

            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            auth = {"authorization": f"Bearer {TEST_KEY}"}
            async with httpx.AsyncClient(timeout=30) as http:
                answers = await asyncio.gather(
                    *(
                        http.post(
                            f"{url}/v1/chat/completions",
                            json=body,
                            headers={**auth, "x-request-id": f"workers-{i}"},
                        )
                        for i in range(40)
                    )
                )
            assert [a.status_code for a in answers] == [200] * 40
            records = await collect(
                kafka.bootstrap_servers,
                REQUESTS.name,
                lambda r: b'"workers-' in r.value and b"response.completed" in r.value,
                expected=40,
                linger=0.2,
            )
            assert len(records) == 40
