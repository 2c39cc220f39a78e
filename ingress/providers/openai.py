"""OpenAI's chat-completions and embeddings API, and every server that speaks it.

The canonical form *is* OpenAI's, so this adapter mostly renames the model and asks streams
to report usage (``stream_options.include_usage``), which is how streamed calls get exact
token counts. Azure and Mistral subclass it for their URL, auth and parameter differences.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ingress.providers.base import (
    Failure,
    Json,
    UpstreamCall,
    bearer_headers,
    retry_after,
)
from ingress.providers.sse import SseParser
from schemas.routing_config import ProviderSettings


class OpenAIAdapter:
    kind = "openai"

    def __init__(self, settings: ProviderSettings) -> None:
        self.base = settings.endpoint()
        self.headers = bearer_headers(settings)

    def chat_url(self, upstream_model: str) -> str:
        return f"{self.base}/chat/completions"

    def embeddings_url(self, upstream_model: str) -> str:
        return f"{self.base}/embeddings"

    def chat_body(self, body: Json, upstream_model: str, stream: bool) -> Json:
        out = {**body, "model": upstream_model, "stream": stream}
        if stream:
            out["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        else:
            out.pop("stream_options", None)
        return out

    def chat_call(self, body: Json, upstream_model: str, stream: bool) -> UpstreamCall:
        payload = orjson.dumps(self.chat_body(body, upstream_model, stream))
        return UpstreamCall(self.chat_url(upstream_model), payload, self.headers)

    def chat_result(self, payload: bytes, public_model: str) -> Json:
        parsed = orjson.loads(payload)
        if not isinstance(parsed, dict) or "choices" not in parsed:
            raise ValueError("the answer is not a chat.completion object")
        return parsed

    def stream_decoder(self, public_model: str) -> OpenAIStream:
        return OpenAIStream()

    def failure(self, status: int, payload: bytes, headers: Mapping[str, str]) -> Failure:
        message, kind = openai_error(payload, status)
        return Failure(status, message, kind, retry_after(headers))

    def embeddings_call(self, body: Json, upstream_model: str) -> UpstreamCall:
        payload = orjson.dumps({**body, "model": upstream_model})
        return UpstreamCall(self.embeddings_url(upstream_model), payload, self.headers)

    def embeddings_result(self, payload: bytes, public_model: str, request: Json) -> Json:
        parsed = orjson.loads(payload)
        if not isinstance(parsed, dict) or "data" not in parsed:
            raise ValueError("the answer is not an embeddings list")
        return parsed

    def health_call(self) -> UpstreamCall | None:
        return UpstreamCall(f"{self.base}/models", b"", self.headers, "GET")


class OpenAIStream:
    """OpenAI's SSE: ``data: {chunk}`` events, then ``data: [DONE]``."""

    def __init__(self) -> None:
        self._sse = SseParser()
        self.error: Failure | None = None

    def feed(self, data: bytes) -> list[Json]:
        return self._chunks(self._sse.feed(data))

    def close(self) -> list[Json]:
        return self._chunks(self._sse.close())

    def _chunks(self, events: Any) -> list[Json]:
        chunks: list[Json] = []
        for event in events:
            if event.data == "[DONE]":
                continue
            try:
                chunk = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                self.error = Failure(502, "the provider sent a stream event that is not JSON")
                continue
            if isinstance(chunk, dict) and "error" in chunk:
                message, kind = openai_error(event.data.encode(), 500)
                self.error = Failure(500, message, kind)
            elif isinstance(chunk, dict):
                chunks.append(chunk)
        return chunks


def openai_error(payload: bytes, status: int) -> tuple[str, str]:
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or f"HTTP {status}"), str(error.get("type") or "")
    if isinstance(error, str):
        return error, ""
    if isinstance(parsed, dict) and "message" in parsed:
        return str(parsed["message"]), ""
    text = payload[:300].decode("utf-8", "replace").strip()
    return (text or f"HTTP {status}"), ""


class OpenAICompatibleAdapter(OpenAIAdapter):
    """vLLM, Ollama, Groq, Together, LM Studio...: OpenAI's paths under their own base URL."""

    kind = "openai_compatible"
