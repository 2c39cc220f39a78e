"""Gemini's SSE stream (``streamGenerateContent?alt=sse``) as canonical chunks."""

from __future__ import annotations

import orjson

from ingress.providers import canonical
from ingress.providers.base import (
    Failure,
    Json,
)
from ingress.providers.gemini_answer import finish_reason, logprobs, tool_call_of, usage
from ingress.providers.sse import SseEvent, SseParser


class GeminiStream:
    """``?alt=sse`` events, each a whole GenerateContentResponse with that step's parts.

    usageMetadata is cumulative, so only the last one is reported, once, at the end; a
    function call arrives whole, so its start and its arguments are two chunks at once.
    """

    def __init__(self, model: str) -> None:
        self._sse = SseParser()
        self._chunks = canonical.ChunkMaker("", model)
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}  # candidate index → tool calls so far
        self._usage: Json | None = None
        self.error: Failure | None = None

    def feed(self, data: bytes) -> list[Json]:
        return self._events(self._sse.feed(data))

    def close(self) -> list[Json]:
        out = self._events(self._sse.close())
        if self.error is not None:
            return out
        if not self._started or self._started - self._finished:
            self.error = Failure(502, "Gemini's stream ended before a finish reason")
            return out
        if self._usage is not None:
            out.append(self._chunks.usage(usage(self._usage)))
        return out

    def _events(self, events: list[SseEvent]) -> list[Json]:
        out: list[Json] = []
        for event in events:
            if self.error is None:
                out.extend(self._event(orjson.loads(event.data)))
        return out

    def _event(self, event: Json) -> list[Json]:
        if isinstance(event.get("error"), dict):
            error = event["error"]
            code = error.get("code")
            self.error = Failure(
                code if isinstance(code, int) and code >= 400 else 500,
                str(error.get("message") or "Gemini's stream failed"),
                str(error.get("status") or ""),
            )
            return []
        make = self._chunks
        make.id = make.id or str(event.get("responseId") or "")
        if event.get("usageMetadata"):
            self._usage = event["usageMetadata"]
        candidates = event.get("candidates") or []
        if not candidates and (event.get("promptFeedback") or {}).get("blockReason"):
            self._started.add(0)
            self._finished.add(0)
            return [make.role(), make.finish("content_filter")]
        out: list[Json] = []
        for candidate in candidates:
            out.extend(self._candidate(candidate))
        return out

    def _candidate(self, candidate: Json) -> list[Json]:
        make = self._chunks
        index = candidate.get("index", 0)
        out: list[Json] = []
        if index not in self._started:
            self._started.add(index)
            out.append(make.role(index))
        texts: list[str] = []
        scores = candidate.get("logprobsResult")  # this event's tokens: on its first text
        for part in (candidate.get("content") or {}).get("parts") or ():
            if part.get("thought"):
                continue
            if part.get("text"):
                texts.append(part["text"])
            elif "functionCall" in part:
                out += self._text(texts, index, scores) + self._call(part, index)
                scores = None if texts else scores
                texts = []
        out += self._text(texts, index, scores)
        reason = candidate.get("finishReason")
        if reason and index not in self._finished:
            self._finished.add(index)
            out.append(make.finish(finish_reason(reason, self._calls.get(index, 0) > 0), index))
        return out

    def _text(self, texts: list[str], index: int, scores: Json | None) -> list[Json]:
        if not texts:
            return []
        chunk = self._chunks.text("".join(texts), index)
        if scores:
            chunk["choices"][0]["logprobs"] = logprobs(scores)
        return [chunk]

    def _call(self, part: Json, index: int) -> list[Json]:
        make = self._chunks
        position = self._calls.get(index, 0)
        self._calls[index] = position + 1
        call = tool_call_of(part, make.id, index, position)
        start = make.tool_start(position, call["id"], call["function"]["name"], index)
        if "extra_content" in call:
            start["choices"][0]["delta"]["tool_calls"][0]["extra_content"] = call["extra_content"]
        return [start, make.tool_arguments(position, call["function"]["arguments"], index)]
