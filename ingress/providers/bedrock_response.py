"""Bedrock ``Converse`` answers as canonical completions and chunks, JSON and streamed.

The stream is AWS event-stream framing (``application/vnd.amazon.eventstream``), decoded by
botocore's ``EventStreamBuffer``: messageStart, contentBlockStart (a tool use),
contentBlockDelta (text, tool input or reasoning), contentBlockStop, messageStop (the stop
reason), then metadata (the usage). An ``exception`` message mid-stream is a failure.
Converse gives no response id, so one is minted. Reasoning blocks are not the answer and are
left out, as the other adapters leave out thoughts.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from botocore.eventstream import EventStreamBuffer, ParserError

from ingress.providers import canonical
from ingress.providers.base import Failure, Json

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
MALFORMED = ("malformed_model_output", "malformed_tool_use")  # no usable answer: a failure
STATUS = {  # Bedrock's exceptions and their HTTP statuses (botocore's service model)
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage(use: Json) -> Json:
    """``inputTokens`` excludes the tokens read from or written to the prompt cache (AWS
    reports them beside it), so the prompt is their sum, as OpenAI counts it."""
    cached = int(use.get("cacheReadInputTokens") or 0)
    written = int(use.get("cacheWriteInputTokens") or 0)
    prompt = int(use.get("inputTokens") or 0) + cached + written
    return canonical.usage(prompt, int(use.get("outputTokens") or 0), cached)


def finish_reason(stop: Any) -> str:
    if stop in MALFORMED:
        raise ValueError(f"Bedrock stopped with {stop}")
    return FINISH.get(str(stop), "stop")


def completion(answer: Any, model: str) -> Json:
    """A ``ConverseResponse`` as a ``chat.completion``."""
    message = (answer.get("output") or {}).get("message") if isinstance(answer, dict) else None
    if not isinstance(message, dict):
        raise ValueError("the answer is not a Converse response")
    texts: list[str] = []
    calls: list[Json] = []
    for block in message.get("content") or ():
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            arguments = orjson.dumps(use.get("input", {})).decode()
            calls.append(canonical.tool_call(use["toolUseId"], use["name"], arguments))
    msg = canonical.message("".join(texts) if texts or not calls else None, calls)
    choice = canonical.choice(0, msg, finish_reason(answer.get("stopReason")))
    return canonical.completion(new_id(), model, [choice], usage(answer.get("usage") or {}))


def exception_failure(name: str, payload: bytes) -> Failure:
    """An ``exception`` message of the stream (``throttlingException``...) as a Failure."""
    kind = name[:1].upper() + name[1:]
    try:
        message = str(orjson.loads(payload).get("message") or kind)
    except (orjson.JSONDecodeError, AttributeError):
        message = payload[:300].decode("utf-8", "replace") or kind
    return Failure(STATUS.get(kind, 500), message, kind)


class BedrockStream:
    """Converse-stream bytes, in any slices, → canonical chunks."""

    def __init__(self, model: str) -> None:
        self._buffer = EventStreamBuffer()
        self._pending = 0  # bytes fed and not yet part of a whole message
        self._chunks = canonical.ChunkMaker(new_id(), model)
        self._tools: dict[int, int] = {}  # content block index → tool call position
        self._stopped = False
        self.error: Failure | None = None

    def feed(self, data: bytes) -> list[Json]:
        self._buffer.add_data(data)
        self._pending += len(data)
        out: list[Json] = []
        try:
            for message in self._buffer:
                self._pending -= message.prelude.total_length
                out.extend(self._message(message.headers, message.payload))
        except ParserError as exc:
            self.error = Failure(502, f"Bedrock sent a broken event stream ({exc})")
        return out

    def close(self) -> list[Json]:
        if self.error is None and (self._pending or not self._stopped):
            self.error = Failure(502, "Bedrock's stream ended before messageStop")
        return []

    def _message(self, headers: dict[str, Any], payload: bytes) -> list[Json]:
        kind = headers.get(":message-type")
        if kind == "exception":
            self.error = exception_failure(str(headers.get(":exception-type") or ""), payload)
            return []
        if kind == "error":
            code = str(headers.get(":error-code") or "")
            self.error = Failure(500, str(headers.get(":error-message") or code), code)
            return []
        event = orjson.loads(payload) if payload else {}
        return self._event(str(headers.get(":event-type")), event)

    def _event(self, name: str, event: Json) -> list[Json]:
        make = self._chunks
        if name == "messageStart":
            return [make.role()]
        if name == "contentBlockStart":
            start = (event.get("start") or {}).get("toolUse")
            if not isinstance(start, dict):
                return []
            position = self._tools[event.get("contentBlockIndex", 0)] = len(self._tools)
            return [make.tool_start(position, start.get("toolUseId", ""), start.get("name", ""))]
        if name == "contentBlockDelta":
            delta = event.get("delta") or {}
            if delta.get("text"):
                return [make.text(delta["text"])]
            at = self._tools.get(event.get("contentBlockIndex", 0))
            fragment = (delta.get("toolUse") or {}).get("input")
            if at is not None and fragment:
                return [make.tool_arguments(at, fragment)]
            return []  # reasoningContent, citations
        if name == "messageStop":
            self._stopped = True
            try:
                return [make.finish(finish_reason(event.get("stopReason")))]
            except ValueError as exc:
                self.error = Failure(502, str(exc), "model_error")
                return []
        if name == "metadata":
            return [make.usage(usage(event.get("usage") or {}))]
        return []
