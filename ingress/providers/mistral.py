"""Mistral's chat API: OpenAI's shape with a few renamed or missing parameters.

``seed`` is ``random_seed``, ``tool_choice: "required"`` is ``"any"``, usage always comes
in the last stream chunk (so ``stream_options`` is not sent), logprobs do not exist, and
tool call ids must be exactly nine letters or digits: ids minted elsewhere (a conversation
that started on another provider) are mapped to stable nine-character ones.
"""

from __future__ import annotations

import hashlib
import re

from ingress.providers.base import Json, UnsupportedError
from ingress.providers.openai import OpenAIAdapter

UNSUPPORTED = ("logprobs", "top_logprobs", "logit_bias")
_TOOL_ID = re.compile(r"^[A-Za-z0-9]{9}$")


def tool_id(given: str) -> str:
    if _TOOL_ID.match(given):
        return given
    return hashlib.sha256(given.encode()).hexdigest()[:9]


def _with_mistral_ids(message: Json) -> Json:
    if message.get("tool_call_id"):
        message = {**message, "tool_call_id": tool_id(str(message["tool_call_id"]))}
    if message.get("tool_calls"):
        calls = [{**c, "id": tool_id(str(c.get("id", "")))} for c in message["tool_calls"]]
        message = {**message, "tool_calls": calls}
    return message


class MistralAdapter(OpenAIAdapter):
    kind = "mistral"

    def chat_body(self, body: Json, upstream_model: str, stream: bool) -> Json:
        asked = [p for p in UNSUPPORTED if body.get(p) not in (None, False)]
        if asked:
            raise UnsupportedError(f"Mistral models do not support `{asked[0]}`")
        out = {**body, "model": upstream_model, "stream": stream}
        for name in (*UNSUPPORTED, "stream_options", "user", "store", "metadata"):
            out.pop(name, None)
        if "seed" in out:
            out["random_seed"] = out.pop("seed")
        if out.get("tool_choice") == "required":
            out["tool_choice"] = "any"
        if "max_completion_tokens" in out:
            out["max_tokens"] = out.pop("max_completion_tokens")
        out["messages"] = [_with_mistral_ids(m) for m in out["messages"]]
        return out
