"""Adapters against the fake upstream over real HTTP, through the gateway's own transport."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from infra.fake_upstream.server import BackgroundFakeUpstream
from infra.fake_upstream.settings import FakeUpstreamSettings
from ingress import exchange
from ingress.providers.base import Adapter, Json
from ingress.providers.registry import build_adapter
from ingress.transport import Transport
from schemas.routing_config import ProviderSettings, Timeouts


@pytest.fixture(scope="module")
def fake() -> Iterator[BackgroundFakeUpstream]:
    with BackgroundFakeUpstream(FakeUpstreamSettings(api_key="sk-upstream")) as server:
        yield server


class Wired:
    """An adapter and a transport for one provider config, and the calls tests make."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.adapter: Adapter = build_adapter(settings)
        self.transport = Transport(settings.kind, Timeouts(first_token_s=10, idle_s=10))

    async def chat(self, body: Json, upstream_model: str | None = None) -> Json:
        model = upstream_model or body["model"]
        return await exchange.chat(self.adapter, self.transport, body, model, body["model"])

    async def stream(self, body: Json, upstream_model: str | None = None) -> list[Json]:
        model = upstream_model or body["model"]
        chunks = await exchange.chat_stream(
            self.adapter, self.transport, body, model, body["model"]
        )
        return [chunk async for chunk in chunks]

    async def embeddings(self, body: Json, upstream_model: str | None = None) -> Json:
        model = upstream_model or body["model"]
        return await exchange.embeddings(self.adapter, self.transport, body, model, body["model"])


@pytest.fixture
async def wire() -> AsyncIterator[Any]:
    opened: list[Wired] = []

    def make(**settings: Any) -> Wired:
        wired = Wired(ProviderSettings(**settings))
        opened.append(wired)
        return wired

    yield make
    for wired in opened:
        await wired.transport.close()


def streamed_text(chunks: list[Json], index: int = 0) -> str:
    return "".join(
        (choice.get("delta") or {}).get("content") or ""
        for chunk in chunks
        for choice in chunk.get("choices") or ()
        if choice.get("index", 0) == index
    )


def streamed_usage(chunks: list[Json]) -> Json | None:
    usages = [chunk["usage"] for chunk in chunks if chunk.get("usage")]
    return usages[-1] if usages else None


def feed_in_slices(decoder: Any, data: bytes, sizes: tuple[int, ...]) -> list[Json]:
    """Feed a stream decoder ``data`` cut in slices of the given sizes, cycled, then close."""
    chunks: list[Json] = []
    at = 0
    for size in itertools.cycle(sizes):
        if at >= len(data):
            break
        chunks += decoder.feed(data[at : at + size])
        at += size
    return chunks + decoder.close()


async def script_fault(fake: BackgroundFakeUpstream, **spec: Any) -> None:
    """Queue a fault at the fake (``POST /_fake/faults``) for its next matching request."""
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{fake.root_url}/_fake/faults", json=spec)
        response.raise_for_status()


def last_request(fake: BackgroundFakeUpstream, provider: str) -> dict[str, Any]:
    """What the provider last received: path, query, headers, auth header names, body."""
    response = httpx.get(f"{fake.root_url}/_fake/last", params={"provider": provider})
    return dict(response.json())
