"""What a completion produced, as text per choice: for events, and for token counting when
a provider reports no usage. Tool calls count as their name plus arguments."""

from __future__ import annotations

from typing import Any


def outputs_of(answer: dict[str, Any]) -> tuple[list[str], str | None]:
    texts: list[str] = []
    finish = None
    for choice in answer.get("choices") or ():
        message = choice.get("message") or {}
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            text += (function.get("name") or "") + (function.get("arguments") or "")
        texts.append(text)
        finish = finish or choice.get("finish_reason")
    return texts, finish


class StreamOutputs:
    """Accumulates streamed chunks: text per choice, the finish reason, the last usage."""

    def __init__(self) -> None:
        self._parts: dict[int, list[str]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            parts = self._parts.setdefault(int(choice.get("index") or 0), [])
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                parts.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                function = call.get("function") or {}
                parts.append((function.get("name") or "") + (function.get("arguments") or ""))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def outputs(self) -> list[str]:
        return ["".join(self._parts[i]) for i in sorted(self._parts)]
