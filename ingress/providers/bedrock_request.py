"""A canonical chat request as a Bedrock ``Converse`` body (the same for converse-stream).

Converse wants the system texts apart; turns that alternate user/assistant (consecutive
turns of one role merge, tool results ride in a user turn as ``toolResult`` blocks); images
as bytes (base64 in JSON) or an S3 URI, never an http URL; no blank text blocks; and a
``toolConfig`` whenever the history holds toolUse or toolResult blocks. What Converse
cannot express raises ``UnsupportedError`` (the dispatcher then tries another deployment).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from ingress.providers import canonical
from ingress.providers.base import Json, UnsupportedError

UNSUPPORTED = {
    "logit_bias": "Converse has no logit bias",
    "audio": "Converse does not answer with audio",
    "prediction": "Converse has no predicted outputs",
    "web_search_options": "Converse has no web search option",
    "functions": "legacy `functions` are not translated: send `tools`",
    "function_call": "legacy `function_call` is not translated: send `tool_choice`",
    "reasoning_effort": "reasoning is model-specific on Bedrock and not translated",
    "seed": "Converse takes no seed",
    "logprobs": "Converse returns no log probabilities",
    "top_logprobs": "Converse returns no log probabilities",
}
IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}
TOOL_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
TIERS = ("flex", "priority")  # OpenAI's service_tier values Bedrock also has


def to_converse(body: Json) -> Json:
    _refuse(body)
    system, turns = _conversation(body["messages"])
    out: Json = {"messages": turns}
    if system:
        out["system"] = system
    inference = _inference(body)
    if inference:
        out["inferenceConfig"] = inference
    tools = _tool_config(body, turns)
    if tools:
        out["toolConfig"] = tools
    text_format = _text_format(body.get("response_format"))
    if text_format:
        out["outputConfig"] = {"textFormat": text_format}
    if body.get("service_tier") in TIERS:
        out["serviceTier"] = {"type": body["service_tier"]}
    return out


def _refuse(body: Json) -> None:
    for name, why in UNSUPPORTED.items():
        value = body.get(name)
        asked = value is not None if name == "seed" else bool(value)  # seed 0 is a seed
        if asked:
            raise UnsupportedError(f"`{name}` is not supported on Bedrock: {why}")
    if (body.get("n") or 1) > 1:
        raise UnsupportedError("Bedrock Converse returns one choice: set `n` to 1")
    for name in ("presence_penalty", "frequency_penalty"):
        if body.get(name):
            raise UnsupportedError(f"`{name}` has no equivalent in Bedrock Converse")
    modalities = body.get("modalities")
    if modalities is not None and list(modalities) != ["text"]:
        raise UnsupportedError('Bedrock Converse answers in text only: set `modalities: ["text"]`')
    tier = body.get("service_tier")
    if tier not in (None, "auto", "default", *TIERS):
        raise UnsupportedError(f"`service_tier: {tier}` has no Bedrock equivalent")


def _inference(body: Json) -> Json:
    out: Json = {}
    tokens = canonical.max_output_tokens(body)
    if tokens is not None:
        out["maxTokens"] = tokens
    temperature = body.get("temperature")
    if temperature is not None:
        if temperature > 1:
            raise UnsupportedError("Bedrock Converse takes `temperature` from 0 to 1")
        out["temperature"] = temperature
    if body.get("top_p") is not None:
        out["topP"] = body["top_p"]
    stops = [s for s in canonical.stops(body.get("stop")) if s]  # Converse rejects ""
    if stops:
        out["stopSequences"] = stops
    return out


# --- messages ---------------------------------------------------------------------------


def _conversation(messages: list[Json]) -> tuple[list[Json], list[Json]]:
    system: list[Json] = []
    turns: list[Json] = []
    for msg in messages:
        role = msg.get("role")
        if role in ("system", "developer"):
            system.extend(_system_blocks(msg.get("content")))
        elif role == "tool":
            _append(turns, "user", [_tool_result(msg)])
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(msg))
        elif role == "user":
            _append(turns, "user", _user_blocks(msg.get("content")))
        else:
            raise UnsupportedError(f"messages with role `{role}` have no Converse equivalent")
    return system, turns


def _append(turns: list[Json], role: str, blocks: list[Json]) -> None:
    """Converse wants alternating roles: a turn of the last turn's role merges into it."""
    if not blocks:
        return  # an empty turn says nothing, and Converse rejects empty content
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": list(blocks)})


def _system_blocks(content: Any) -> list[Json]:
    if isinstance(content, list) and any(p.get("type") != "text" for p in content):
        raise UnsupportedError("Bedrock system prompts take text parts only")
    text = canonical.text_of(content)
    return [{"text": text}] if text.strip() else []


def _user_blocks(content: Any) -> list[Json]:
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    blocks: list[Json] = []
    for part in content or ():
        kind = part.get("type")
        if kind == "text":
            if str(part.get("text") or "").strip():
                blocks.append({"text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image((part.get("image_url") or {}).get("url", "")))
        else:
            raise UnsupportedError(
                f"Bedrock Converse content parts of type `{kind}` are not translated"
            )
    return blocks


def _image(url: str) -> Json:
    inline = canonical.data_url(url)
    if inline is not None:
        mime, data = inline
        fmt = IMAGE_FORMATS.get(mime.removeprefix("image/")) if mime.startswith("image/") else None
        if fmt is None:
            raise UnsupportedError(f"Bedrock takes png, jpeg, gif or webp images, not {mime}")
        return {"image": {"format": fmt, "source": {"bytes": data}}}
    if url.startswith("s3://"):
        fmt = IMAGE_FORMATS.get(url.rsplit(".", 1)[-1].lower())
        if fmt is None:
            raise UnsupportedError("an s3:// image must end in .png, .jpeg, .jpg, .gif or .webp")
        return {"image": {"format": fmt, "source": {"s3Location": {"uri": url}}}}
    raise UnsupportedError(
        "Bedrock Converse takes images as bytes or from S3, not by URL: "
        "send a base64 data: URL or an s3:// URI"
    )


def _assistant_blocks(msg: Json) -> list[Json]:
    text = canonical.text_of(msg.get("content"))
    blocks: list[Json] = [{"text": text}] if text.strip() else []
    for call in msg.get("tool_calls") or ():
        function = call.get("function") or {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {}  # as the Anthropic adapter: a truncated call still round-trips
        use = {
            "toolUseId": tool_id(call.get("id")),
            "name": function.get("name"),
            "input": arguments,
        }
        blocks.append({"toolUse": use})
    return blocks


def _tool_result(msg: Json) -> Json:
    content = msg.get("content")
    blocks = _user_blocks(content) if isinstance(content, list) else []
    if not blocks:
        blocks = [{"text": canonical.text_of(content)}]
    return {"toolResult": {"toolUseId": tool_id(msg.get("tool_call_id")), "content": blocks}}


def tool_id(given: Any) -> str:
    """Converse ids match ``[a-zA-Z0-9_.:-]{1,64}``; an id minted elsewhere that does not
    becomes a stable digest of itself, the same in the toolUse and its toolResult."""
    raw = str(given or "")
    if TOOL_ID.fullmatch(raw):
        return raw
    return "tooluse_" + hashlib.sha256(raw.encode()).hexdigest()[:40]


# --- tools and output ----------------------------------------------------------------------


def _tool_config(body: Json, turns: list[Json]) -> Json | None:
    given = [t for t in body.get("tools") or () if isinstance(t, dict)]
    tools = canonical.function_tools(body)
    if len(tools) != len(given):
        raise UnsupportedError("Bedrock Converse takes `function` tools only")
    choice = body.get("tool_choice")
    in_history = any("toolUse" in b or "toolResult" in b for t in turns for b in t["content"])
    if not tools or choice == "none":
        if in_history:
            raise UnsupportedError(
                "Bedrock needs the `tools` declared when the conversation holds tool calls"
                + (", and has no `tool_choice: none`" if tools else "")
            )
        return None
    if body.get("parallel_tool_calls") is False:
        raise UnsupportedError("Bedrock Converse cannot forbid parallel tool calls")
    config: Json = {"tools": [{"toolSpec": _spec(t)} for t in tools]}
    # auto is the default; only some models accept a toolChoice at all, so it is sent only
    # when the caller asked for more than auto
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": (choice.get("function") or {}).get("name")}}
    return config


def _spec(function: Json) -> Json:
    spec: Json = {
        "name": function["name"],
        "inputSchema": {"json": function.get("parameters") or {"type": "object", "properties": {}}},
    }
    if function.get("description"):
        spec["description"] = function["description"]
    if function.get("strict"):
        spec["strict"] = True
    return spec


def _text_format(fmt: Any) -> Json | None:
    """``json_schema`` is Converse's structured output (``outputConfig.textFormat``; the
    schema travels as a JSON string). There is no schema-less JSON mode."""
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") != "json_schema":
        raise UnsupportedError(
            f"`response_format: {fmt.get('type')}` has no Bedrock equivalent: send json_schema"
        )
    given = fmt.get("json_schema") or {}
    schema: Json = {"schema": orjson.dumps(given.get("schema") or {"type": "object"}).decode()}
    for name in ("name", "description"):
        if given.get(name):
            schema[name] = given[name]
    return {"type": "json_schema", "structure": {"jsonSchema": schema}}
