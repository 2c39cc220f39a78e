"""Where the text is in a canonical request body, and how to rewrite it without touching
the caller's copy: message contents (strings and text parts), tool-call arguments, and
embeddings inputs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Path = tuple[Any, ...]


def _paths(body: dict[str, Any]) -> Iterator[tuple[str, Path, str]]:
    """(role, path, text) for every text a provider would read."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            role = str(message.get("role") or "")
            content = message.get("content")
            if isinstance(content, str):
                yield role, ("messages", i, "content"), content
            elif isinstance(content, list):
                for j, part in enumerate(content):
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        yield role, ("messages", i, "content", j, "text"), part["text"]
            for k, call in enumerate(message.get("tool_calls") or ()):
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    path = ("messages", i, "tool_calls", k, "function", "arguments")
                    yield role, path, function["arguments"]
    given = body.get("input")
    if isinstance(given, str):
        yield "input", ("input",), given
    elif isinstance(given, list):
        for j, item in enumerate(given):
            if isinstance(item, str):
                yield "input", ("input", j), item


def texts(body: dict[str, Any]) -> list[tuple[str, Path, str]]:
    return list(_paths(body))


def rewrite(
    body: dict[str, Any], found: list[tuple[str, Path, str]], new: Callable[[int, str], str]
) -> dict[str, Any]:
    """A copy of ``body`` where text ``i`` of ``found`` is ``new(i, text)``; containers on
    a changed path are copied, everything else is shared."""
    out: dict[str, Any] = dict(body)
    copied: set[int] = {id(out)}
    for i, (_, path, text) in enumerate(found):
        value = new(i, text)
        if value is text:
            continue
        node: Any = out
        for step in path[:-1]:
            child = node[step]
            if id(child) not in copied:
                child = list(child) if isinstance(child, list) else dict(child)
                copied.add(id(child))
                node[step] = child
            node = child
        node[path[-1]] = value
    return out
