"""The ledger's changelog (written as record batches, not through Faust's table sends) is
what a worker rebuilds its table from: a real worker, its RocksDB deleted, real Kafka."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from infra.kafka.broker import LocalKafka
from infra.stack import Stack
from schemas.events import Event, MeterState
from schemas.topics import REQUESTS
from tests.events import answered
from tests.harness import write_config
from tests.kafka_io import collect, latest_meter_states, produce

pytestmark = pytest.mark.integration
TOKENS = 30
"""Tokens of each answer (14 prompt + 16 completion, as the provider reports)."""


def _pair(tenant: str, rid: str) -> list[Event]:
    usage = {"prompt_tokens": 14, "completion_tokens": 16, "total_tokens": TOKENS}
    return [*answered(tenant, rid, usage=usage, est_usd="0.0001", est_tokens=100)]


async def _settled(bootstrap: str, meter: str, tokens: int) -> list[MeterState]:
    """The meter's shares once they count ``tokens`` with nothing reserved."""
    deadline = time.monotonic() + 60
    shares: list[MeterState] = []
    while time.monotonic() < deadline:
        shares = await latest_meter_states(bootstrap, meter, wait_s=1)
        if sum(s.tokens for s in shares) >= tokens and not any(s.reserved_tokens for s in shares):
            return shares
        await asyncio.sleep(0.2)
    raise AssertionError(f"{meter} did not reach {tokens} tokens: {shares}")


async def test_a_worker_without_its_store_rebuilds_the_ledger_from_the_changelog(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    config, path = write_config(
        tmp_path / "changelog",
        kafka.bootstrap_servers,
        guards={"analysis": {"enabled": False}},
        budgets=[{"name": "books", "scope": "tenant", "max_usd": "100"}],
    )
    bootstrap = kafka.bootstrap_servers
    tenant = config.keys[0].tenant
    meter = f"budget:books:{tenant}"
    stack = Stack(config, path, with_upstream=False)
    stack.start_stage("worker")
    try:
        pairs = [_pair(tenant, f"rid-{i}") for i in range(20)]
        await produce(bootstrap, REQUESTS.name, [e for pair in pairs for e in pair])
        await _settled(bootstrap, meter, 20 * TOKENS)
        changelog = f"{config.processors.app_id}-ledger-changelog"
        written = await collect(bootstrap, changelog, lambda r: True, 1 << 30, wait_s=2)
        keys = {r.key for r in written}
        assert any(k is not None and b"r:rid-19" in k for k in keys), keys
        assert any(k is not None and meter.encode() in k for k in keys), keys

        await asyncio.to_thread(stack.stop_stage, "worker")
        shutil.rmtree(config.processors_dir)  # nothing local: only the changelog is left
        await asyncio.to_thread(stack.start_stage, "worker")
        # one new request, and the last one's answer again (a redelivery): the rebuilt
        # entries must know it was billed, the rebuilt meter what it had counted
        await produce(bootstrap, REQUESTS.name, [*_pair(tenant, "rid-20"), pairs[19][1]])
        shares = await _settled(bootstrap, meter, 21 * TOKENS)
        await asyncio.sleep(2)  # a double count would show up by now
        shares = await latest_meter_states(bootstrap, meter, wait_s=2)
        assert sum(s.tokens for s in shares) == 21 * TOKENS
    finally:
        stack.down()
