"""Client traffic through the gateway, and what the upstream reported serving."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import openai

from infra.sql import QueryError, run_sql
from schemas.config import TollgateConfig
from schemas.events import Usage
from schemas.pricing import build_price_book
from tests.harness import TEST_KEY


@dataclass
class Served:
    """Per tenant: requests answered, tokens as the upstream reported them, cost implied."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    request_ids: set[str] = field(default_factory=set)

    def add(self, rid: str, model: str, usage: Usage, config: TollgateConfig) -> None:
        price = build_price_book(config.prices()).lookup(model, int(time.time() * 1000))
        assert price is not None, f"no price for {model}"
        self.requests += 1
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cost += price.cost(usage)
        self.request_ids.add(rid)


def gateway_client(config: TollgateConfig, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"http://{config.ingress.host}:{config.ingress.port}/v1",
        api_key=key,
        max_retries=0,
        timeout=30,
    )


async def chat(
    client: openai.AsyncOpenAI,
    served: Served,
    config: TollgateConfig,
    *,
    model: str,
    text: str,
    max_tokens: int | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": text}],
        max_tokens=max_tokens,
        extra_headers=headers or {},
    )
    completion = raw.parse()
    rid = raw.headers["x-request-id"]
    if completion.usage is not None:
        usage = Usage.from_openai(completion.usage.model_dump())
    else:  # the upstream omitted usage: what it served is in its own stats, checked apart
        usage = Usage()
    served.add(rid, completion.model, usage, config)


async def wait_for_sql(config: TollgateConfig, sql: str, expect: Any, wait_s: float = 60.0) -> Any:
    """Poll until the query returns ``expect`` (or ``expect(rows)`` is true); return rows."""
    deadline = time.monotonic() + wait_s
    rows: Any = None
    while time.monotonic() < deadline:
        try:
            rows = (await asyncio.to_thread(run_sql, config, sql))["rows"]
        except QueryError:
            rows = None
        if rows is not None and (expect(rows) if callable(expect) else rows == expect):
            return rows
        await asyncio.sleep(0.25)
    raise AssertionError(f"{sql!r} returned {rows!r}, expected {expect!r}")


async def upstream_stats(config: TollgateConfig) -> dict[str, Any]:
    base = config.fake_upstream.url
    async with httpx.AsyncClient() as client:
        return dict((await client.get(f"{base}/_fake/stats")).json())


async def keep_sending(
    config: TollgateConfig,
    served: Served,
    stop: asyncio.Event,
    *,
    lanes: int,
    models: tuple[str, ...] = ("gpt-4o-mini",),
    pause_s: float = 0.01,
) -> int:
    """Chat requests from ``lanes`` concurrent clients (cycling ``models``, varying
    ``max_tokens``) until ``stop``; returns the failures, each request it served in
    ``served``."""
    client = gateway_client(config, TEST_KEY)
    failures = 0

    async def lane(n: int) -> None:
        nonlocal failures
        i = 0
        while not stop.is_set():
            try:
                await chat(
                    client,
                    served,
                    config,
                    model=models[i % len(models)],
                    text=f"lane {n} #{i}",
                    max_tokens=3 + i % 5,
                )
            except Exception:
                failures += 1
            i += 1
            await asyncio.sleep(pause_s)

    await asyncio.gather(*(lane(n) for n in range(lanes)))
    return failures
