"""One replayed call through the gateway, tagged with its experiment and variant.

The call uses a replay key (``replay: true``): its headers name the experiment and
variant, its request id is deterministic (``replay:<experiment>:<variant>:<source>``), so
a call that reached the gateway before a crash is findable in ClickHouse by that id.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from infra.replay.records import CHAT

_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")


def replay_request_id(experiment: str, variant: str, source: str) -> str:
    """Readable when it fits the gateway's request-id rules (128 characters of
    ``[A-Za-z0-9._:-]``), else a digest of the same three parts."""
    rid = f"replay:{experiment}:{variant}:{source}"
    if len(rid) <= 128 and set(rid) <= _SAFE:
        return rid
    digest = hashlib.blake2b(f"{experiment}\x00{variant}\x00{source}".encode(), digest_size=16)
    return f"replay:{digest.hexdigest()}"


@dataclass(slots=True)
class Answer:
    status: int
    outputs: list[str] = field(default_factory=list)
    error: str = ""
    latency_ms: float = 0.0


class RateLimit:
    """At most ``rps`` starts per second, evenly spaced (no bursts); None = no cap."""

    def __init__(self, rps: float | None) -> None:
        self.interval = 1 / rps if rps else 0.0
        self.next_at = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        at = max(self.next_at, now)
        self.next_at = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


class Sender:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, key: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.key = key

    async def send(
        self,
        body: dict[str, Any],
        *,
        request_id: str,
        experiment: str,
        variant: str,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = {
            **(headers or {}),
            "authorization": f"Bearer {self.key}",
            "content-type": "application/json",
            "x-request-id": request_id,
            "x-tollgate-experiment": experiment,
            "x-tollgate-variant": variant,
        }
        started = time.perf_counter()
        try:
            async with self.session.post(
                self.base_url + CHAT.removeprefix("/v1"), data=orjson.dumps(body), headers=sent
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Answer(0, error=f"gateway unreachable: {exc}")
        latency = (time.perf_counter() - started) * 1000
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = {}
        if status != 200:
            message = str((data.get("error") or {}).get("message") or raw[:200])
            return Answer(status, error=message, latency_ms=latency)
        outputs = [
            str((choice.get("message") or {}).get("content") or "")
            for choice in data.get("choices") or []
        ]
        return Answer(status, outputs, latency_ms=latency)
