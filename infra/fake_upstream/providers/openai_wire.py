"""OpenAI chat choices and stream deltas for replies that carry tool calls or logprobs.

Shapes follow api.openai.com: a tool-call message has ``content: null`` and ``tool_calls``;
a streamed tool call opens with its id, type, name and empty ``arguments``, then appends
argument fragments; logprobs list token, logprob, UTF-8 bytes and ``top_logprobs``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from infra.fake_upstream.providers.reply import Reply, ToolCall
from infra.fake_upstream.text import pieces

FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length", "tool": "tool_calls"}
ARGUMENT_PIECE = 8  # characters of arguments per streamed tool-call delta


def call_id(call: ToolCall, lean: bool = False) -> str:
    """``call_…`` for OpenAI; Mistral's ids are exactly 9 letters or digits."""
    return call.ref[:9] if lean else "call_" + call.ref


def tool_call(call: ToolCall, lean: bool = False) -> dict[str, Any]:
    return {
        "id": call_id(call, lean),
        "type": "function",
        "function": {"name": call.name, "arguments": call.text},
    }


def message(answer: Reply, lean: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "role": "assistant",
        "content": None if answer.tool else answer.text,
        "refusal": None,
        "annotations": [],
    }
    if answer.tool is not None:
        body["tool_calls"] = [tool_call(answer.tool, lean)]
    return body


def _logprob(token: str, rank: int) -> float:
    digest = hashlib.blake2b(token.encode(), digest_size=4).digest()
    return -round(rank * 1.5 + int.from_bytes(digest, "big") % 1000 / 1000, 6)


ALTERNATIVES = (" the", " a", " and", " of", ".", " to", " in", " is", " it", " on")


def logprob_entry(token: str, top: int) -> dict[str, Any]:
    """A token's logprob; ``top`` alternatives, the token itself first and most likely."""
    others = [t for t in ALTERNATIVES + tuple(f" w{i}" for i in range(20)) if t != token]
    tops = [token, *others][:top]
    return {
        "token": token,
        "logprob": _logprob(token, 0),
        "bytes": list(token.encode()),
        "top_logprobs": [
            {"token": t, "logprob": _logprob(t, rank), "bytes": list(t.encode())}
            for rank, t in enumerate(tops)
        ],
    }


def logprobs(model: str, text: str, top: int | None) -> dict[str, Any] | None:
    if top is None:
        return None
    return {"content": [logprob_entry(p, top) for p in pieces(model, text)], "refusal": None}


def choice(
    index: int, model: str, answer: Reply, top: int | None, lean: bool = False
) -> dict[str, Any]:
    return {
        "index": index,
        "message": message(answer, lean),
        "logprobs": logprobs(model, answer.text, top) if not answer.tool else None,
        "finish_reason": FINISH[answer.finish],
    }


def tool_deltas(index: int, call: ToolCall, lean: bool = False) -> list[dict[str, Any]]:
    """The stream of one tool call: opening delta, then argument fragments (Mistral: whole)."""
    if lean:
        whole = {**tool_call(call, lean), "index": 0}
        return [_delta(index, {"role": "assistant", "content": "", "tool_calls": [whole]})]
    opening = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "index": 0,
                "id": "call_" + call.ref,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
        ],
        "refusal": None,
    }
    args = call.text
    fragments = [args[i : i + ARGUMENT_PIECE] for i in range(0, len(args), ARGUMENT_PIECE)]
    return [
        _delta(index, opening),
        *(
            _delta(index, {"tool_calls": [{"index": 0, "function": {"arguments": f}}]})
            for f in fragments
        ),
    ]


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
