"""Editing the config file changes routing live; a stream in flight finishes untouched;
a broken edit is refused and the running config stays."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from infra.fake_upstream.server import BackgroundFakeUpstream
from tests.harness import TEST_KEY, free_port, write_config
from tests.ingress.live_gateway import LiveGateway

AUTH = {"authorization": f"Bearer {TEST_KEY}"}


async def models(http: httpx.AsyncClient, url: str) -> set[str]:
    response = await http.get(f"{url}/v1/models", headers=AUTH)
    return {m["id"] for m in response.json()["data"]}


async def wait_for(check: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail("the config change was not applied in time")
        await asyncio.sleep(0.05)


async def test_reload_applies_edits_and_keeps_streams(tmp_path: Path) -> None:
    with BackgroundFakeUpstream() as fake:
        provider = {
            "kind": "openai",
            "base_url": fake.base_url,
            "headers": {"x-fake-tokens-per-second": "200"},
        }
        config, path = write_config(
            tmp_path / "gw",
            f"127.0.0.1:{free_port()}",  # no Kafka: events wait in memory, requests still work
            providers={"fake": provider},
            deployments=[{"model": "gpt-4o-mini", "provider": "fake"}],
        )
        with LiveGateway(config, path) as gateway:
            async with httpx.AsyncClient(timeout=30) as http:
                assert await models(http, gateway.url) == {"gpt-4o-mini"}
                body = {
                    "model": "gpt-4o-mini",
                    "stream": True,
                    "max_tokens": 300,
                    "messages": [{"role": "user", "content": "long story"}],
                }
                async with http.stream(
                    "POST", f"{gateway.url}/v1/chat/completions", json=body, headers=AUTH
                ) as stream:
                    lines = stream.aiter_lines()
                    await anext(lines)  # the stream is flowing on the old runtime

                    data = yaml.safe_load(path.read_text())
                    data["routing"] = {"aliases": {"quick": "gpt-4o-mini"}}
                    path.write_text(yaml.safe_dump(data))

                    async def alias_visible() -> bool:
                        return "quick" in await models(http, gateway.url)

                    await wait_for(alias_visible)
                    rest = [line async for line in lines]
                assert rest[-2:] == ["data: [DONE]", ""] or rest[-1] == "data: [DONE]"

                answer = await http.post(
                    f"{gateway.url}/v1/chat/completions",
                    json={"model": "quick", "messages": [{"role": "user", "content": "hi"}]},
                    headers=AUTH,
                )
                assert answer.status_code == 200

                path.write_text(path.read_text() + "\nnot_a_section: 1\n")
                await asyncio.sleep(1.0)  # a broken edit is logged and ignored
                assert "quick" in await models(http, gateway.url)
