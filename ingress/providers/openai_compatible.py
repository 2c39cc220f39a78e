"""OpenAI and any server speaking its chat-completions API (vLLM, Ollama, Groq, ...).

One pooled keep-alive aiohttp session per adapter; the request body is forwarded as the
client sent it (already parsed once, dumped with orjson), the response returned verbatim.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from ingress.errors import UpstreamError, UpstreamTimeoutError
from ingress.providers.base import ChatResult

PASS_THROUGH = (
    "retry-after",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


class OpenAICompatible:
    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None,
        timeout_s: float,
        max_connections: int = 256,
    ) -> None:
        self.name = name
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 10))
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )
        return self._session

    async def chat(self, body: dict[str, Any], request_id: str) -> ChatResult:
        headers = {**self._headers, "x-request-id": request_id}
        try:
            async with self._client().post(
                self._url, data=orjson.dumps(body), headers=headers
            ) as r:
                raw = await r.read()
                kept = {h: r.headers[h] for h in PASS_THROUGH if h in r.headers}
                status = r.status
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"{self.name} did not answer within {self._timeout.total:.0f} s; retry later"
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"{self.name} is unreachable ({type(exc).__name__}); retry later"
            ) from exc
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            if status == 200:
                raise UpstreamError(f"{self.name} returned a body that is not a JSON object")
            parsed = None
        return ChatResult(status, raw, parsed, kept)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)
