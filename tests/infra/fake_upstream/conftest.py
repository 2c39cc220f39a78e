"""One fake upstream per test module, over real HTTP, and raw clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from infra.fake_upstream.server import BackgroundFakeUpstream
from infra.fake_upstream.settings import FakeUpstreamSettings

KEY = "sk-fake-provider-key"


@pytest.fixture(scope="module")
def fake() -> Iterator[BackgroundFakeUpstream]:
    with BackgroundFakeUpstream(FakeUpstreamSettings(api_key=KEY)) as server:
        yield server


@pytest.fixture
async def http(fake: BackgroundFakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake.root_url, timeout=10) as raw:
        await raw.post("/_fake/reset")
        yield raw


def sse_events(raw: bytes, separator: bytes = b"\n\n") -> list[tuple[str | None, Any]]:
    """(event name, parsed data) for every event; strict about the framing."""
    assert raw.endswith(separator), raw[-40:]
    out: list[tuple[str | None, Any]] = []
    for block in raw.split(separator)[:-1]:
        name = None
        data = None
        for line in block.split(separator[: len(separator) // 2]):
            if line.startswith(b"event: "):
                name = line.removeprefix(b"event: ").decode()
            elif line.startswith(b"data: "):
                payload = line.removeprefix(b"data: ")
                data = "[DONE]" if payload == b"[DONE]" else orjson.loads(payload)
            else:
                raise AssertionError(f"unexpected line {line!r}")
        out.append((name, data))
    return out
