"""A recorded body → the body a variant sends: model, parameters, system prompt, template."""

from __future__ import annotations

import copy
from typing import Any

from infra.replay.spec import Variant


def body_for(variant: Variant, recorded: dict[str, Any], model: str) -> dict[str, Any]:
    """Always a JSON answer (``stream`` off): the comparison needs the whole text."""
    body = copy.deepcopy(recorded)
    body["model"] = variant.model or model
    body.pop("stream", None)
    body.pop("stream_options", None)
    body.update(copy.deepcopy(variant.params))
    messages = body.get("messages")
    if isinstance(messages, list):
        if variant.system is not None:
            rest = [m for m in messages if not (isinstance(m, dict) and m.get("role") == "system")]
            messages = [{"role": "system", "content": variant.system}, *rest]
        if variant.template is not None:
            messages = _templated(messages, variant.template)
        body["messages"] = messages
    return body


def _templated(messages: list[Any], template: str) -> list[Any]:
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                messages = list(messages)
                messages[i] = {**message, "content": template.replace("{prompt}", content)}
            break
    return messages
