"""`ingress.workers: 2` runs two serving processes behind one port, each publishing events."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from infra.kafka.broker import LocalKafka
from infra.stack import Stack
from tests.harness import TEST_KEY, write_config
from tests.integration.traffic import Served, chat, gateway_client, wait_for_sql

pytestmark = pytest.mark.integration


def _worker_pids(pid: int) -> list[int]:
    """uvicorn's worker processes under the ingress process (spawned children)."""
    return [p for p in _children(pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


async def test_two_workers_serve_and_every_request_is_recorded(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    config, path = write_config(
        tmp_path / "workers", kafka.bootstrap_servers, ingress={"workers": 2}
    )
    stack = Stack(config, path, with_upstream=True)
    try:
        for stage in ("upstream", "sink", "worker", "ingress"):
            await asyncio.to_thread(stack.start_stage, stage)
        ingress = stack.stage("ingress").process
        assert ingress is not None
        workers = await asyncio.to_thread(_worker_pids, ingress.pid)
        assert len(workers) == 2, f"expected 2 worker processes, found {workers}"

        served = Served()
        client = gateway_client(config, TEST_KEY)
        await asyncio.gather(
            *(chat(client, served, config, model="gpt-4o-mini", text=f"w{i}") for i in range(40))
        )
        tenant = config.keys[0].tenant
        await wait_for_sql(
            config,
            "SELECT count(), sum(prompt_tokens + completion_tokens) FROM usage FINAL "
            f"WHERE tenant = '{tenant}'",
            [[40, served.prompt_tokens + served.completion_tokens]],
        )
    finally:
        await asyncio.to_thread(stack.down)
