"""Cohere's answers in canonical form: usage, logprobs, finish reasons, and the SSE stream
(message-start, content-*, tool-plan-delta, tool-call-*, message-end) as chunks."""

from __future__ import annotations

import orjson

from ingress.providers import canonical
from ingress.providers.base import (
    Failure,
    Json,
)
from ingress.providers.sse import SseEvent, SseParser

FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
FAILED = ("ERROR", "TIMEOUT")  # finish reasons that are failures, not answers


def usage(use: Json) -> Json:
    """``tokens`` counts what the model saw; ``billed_units`` (what is charged) stands in
    when it is missing."""
    counts = use.get("tokens") or use.get("billed_units") or {}
    return canonical.usage(
        int(counts.get("input_tokens") or 0),
        int(counts.get("output_tokens") or 0),
        int(use.get("cached_tokens") or 0),
    )


def logprobs(items: list[Json]) -> Json:
    """Cohere scores text pieces (one or more tokens each): one entry per piece, summed."""
    content = []
    for item in items:
        text = str(item.get("text") or "")
        score = sum(item.get("logprobs") or ())
        content.append(
            {"token": text, "logprob": score, "bytes": list(text.encode()), "top_logprobs": []}
        )
    return {"content": content, "refusal": None}


class CohereStream:
    """v2 chat SSE → canonical chunks; usage and finish come with message-end."""

    def __init__(self, model: str) -> None:
        self._sse = SseParser()
        self._chunks = canonical.ChunkMaker("", model)
        self._texts: set[int] = set()  # content indexes that are text (not thinking)
        self._calls: dict[int, int] = {}  # tool call event index → position
        self._ended = False
        self.error: Failure | None = None

    def feed(self, data: bytes) -> list[Json]:
        return self._events(self._sse.feed(data))

    def close(self) -> list[Json]:
        out = self._events(self._sse.close())
        if self.error is None and not self._ended:
            self.error = Failure(502, "Cohere's stream ended before message-end")
        return out

    def _events(self, events: list[SseEvent]) -> list[Json]:
        out: list[Json] = []
        for event in events:
            if self.error is None and event.data != "[DONE]":
                out.extend(self._event(orjson.loads(event.data)))
        return out

    def _event(self, event: Json) -> list[Json]:
        make = self._chunks
        kind = event.get("type")
        delta = (event.get("delta") or {}).get("message") or {}
        index = event.get("index") or 0
        if kind == "message-start":
            make.id = str(event.get("id") or "")
            return [make.role()]
        if kind in ("content-start", "content-delta"):
            content = delta.get("content") or {}
            if kind == "content-start" and content.get("type", "text") == "text":
                self._texts.add(index)
            if index in self._texts and content.get("text"):
                chunk = make.text(content["text"])
                if event.get("logprobs"):
                    chunk["choices"][0]["logprobs"] = logprobs([event["logprobs"]])
                return [chunk]
            return []
        if kind == "tool-plan-delta":
            return [make.text(delta["tool_plan"])] if delta.get("tool_plan") else []
        if kind == "tool-call-start":
            call = delta.get("tool_calls") or {}
            function = call.get("function") or {}
            position = self._calls[index] = len(self._calls)
            out = [make.tool_start(position, str(call.get("id")), str(function.get("name")))]
            if function.get("arguments"):
                out.append(make.tool_arguments(position, function["arguments"]))
            return out
        if kind == "tool-call-delta":
            fragment = ((delta.get("tool_calls") or {}).get("function") or {}).get("arguments")
            if fragment and index in self._calls:
                return [make.tool_arguments(self._calls[index], fragment)]
            return []
        if kind == "message-end":
            return self._end(event.get("delta") or {})
        return []  # content-end, tool-call-end, citations, debug

    def _end(self, delta: Json) -> list[Json]:
        self._ended = True
        reason = delta.get("finish_reason")
        if delta.get("error") or reason in FAILED:
            self.error = Failure(502, str(delta.get("error") or f"Cohere stopped with {reason}"))
            return []
        make = self._chunks
        return [
            make.finish(FINISH.get(str(reason), "stop")),
            make.usage(usage(delta.get("usage") or {})),
        ]
