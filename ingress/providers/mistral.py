"""Mistral's chat API: OpenAI's shape with a few renamed or missing parameters.

``seed`` is ``random_seed``, ``tool_choice: "required"`` is ``"any"``, usage always comes
in the last stream chunk (so ``stream_options`` is not sent), and logprobs do not exist.
"""

from __future__ import annotations

from ingress.providers.base import Json, UnsupportedError
from ingress.providers.openai import OpenAIAdapter

UNSUPPORTED = ("logprobs", "top_logprobs", "logit_bias")


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
        return out
