"""Gemini requests from canonical (OpenAI) chat and embeddings requests."""

from __future__ import annotations

import base64
import mimetypes
import struct
from typing import Any

import orjson

from ingress.providers import canonical
from ingress.providers.base import (
    Json,
    UnsupportedError,
)

API = "v1beta"
FILTERED = frozenset(
    ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
     "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION")
)  # fmt: skip
UNSUPPORTED = {
    "logit_bias": "Gemini has no logit bias",
    "audio": "Gemini's generateContent does not answer with audio here",
    "prediction": "Gemini has no predicted outputs",
    "web_search_options": "web search is Gemini's google_search tool, not offered here",
    "functions": "legacy `functions` are not translated: send `tools`",
    "function_call": "legacy `function_call` is not translated: send `tool_choice`",
}
THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
THINKING_LEVELS = {"minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH"}
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def model_name(model: str) -> str:
    """The resource name: ``models/x`` (a name given whole, tuned models too, stays)."""
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def to_gemini_request(body: Json, model: str) -> Json:
    for name, why in UNSUPPORTED.items():
        if body.get(name) is not None:
            raise UnsupportedError(f"`{name}` is not supported on Gemini: {why}")
    if body.get("parallel_tool_calls") is False:
        raise UnsupportedError(
            "Gemini cannot be limited to one tool call per turn (`parallel_tool_calls: false`)"
        )
    modalities = body.get("modalities")
    if modalities is not None and list(modalities) != ["text"]:
        raise UnsupportedError('Gemini answers here in text only: set `modalities` to ["text"]')
    system: list[Json] = []
    contents: list[Json] = []
    names: dict[str, str] = {}  # tool call id → function name, from the assistant turns
    for msg in body["messages"]:
        role = msg.get("role")
        if role in ("system", "developer"):
            text = _text_only(msg.get("content"), role)
            if text:
                system.append({"text": text})
        elif role == "assistant":
            _append(contents, "model", _model_parts(msg, names))
        elif role == "tool":
            _append(contents, "user", [_function_response(msg, names)])
        elif role == "function":
            raise UnsupportedError("legacy `function` messages are not translated: use `tool`")
        else:
            _append(contents, "user", _user_parts(msg.get("content")))
    out: Json = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    config = _generation_config(body, model)
    if config:
        out["generationConfig"] = config
    _tools(body, out)
    return out


def _append(contents: list[Json], role: str, parts: list[Json]) -> None:
    """Consecutive turns of one role merge: Gemini wants user and model to alternate."""
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": list(parts)})


def _text_only(content: Any, role: str) -> str:
    if isinstance(content, list) and any(p.get("type") != "text" for p in content):
        raise UnsupportedError(f"Gemini takes only text in `{role}` messages")
    return canonical.text_of(content)


def _user_parts(content: Any) -> list[Json]:
    if isinstance(content, str):
        return [{"text": content}]
    return [_user_part(part) for part in content or ()]


def _user_part(part: Json) -> Json:
    kind = part.get("type")
    if kind == "text":
        return {"text": part.get("text", "")}
    if kind == "image_url":
        url = (part.get("image_url") or {}).get("url", "")
        inline = canonical.data_url(url)
        if inline:
            return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
        mime = mimetypes.guess_type(url.split("?")[0])[0] or "image/jpeg"
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        mime = f"audio/{audio.get('format') or 'wav'}"
        return {"inlineData": {"mimeType": mime, "data": audio.get("data", "")}}
    if kind == "file":
        file = part.get("file") or {}
        inline = canonical.data_url(str(file.get("file_data") or ""))
        if inline is None:
            raise UnsupportedError(
                "Gemini cannot read OpenAI file ids: send the file inline as `file_data`"
            )
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    raise UnsupportedError(f"Gemini models cannot take `{kind}` content parts here")


def _model_parts(msg: Json, names: dict[str, str]) -> list[Json]:
    text = canonical.text_of(msg.get("content"))
    parts: list[Json] = [{"text": text}] if text else []
    for call in msg.get("tool_calls") or ():
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        names[str(call.get("id"))] = name
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError as exc:
            raise UnsupportedError(
                f"tool call `{call.get('id')}` has arguments that are not JSON; Gemini needs"
                " an object"
            ) from exc
        if not isinstance(arguments, dict):
            raise UnsupportedError(f"tool call `{call.get('id')}`: Gemini needs object arguments")
        part: Json = {"functionCall": {"name": name, "args": arguments}}
        google = (call.get("extra_content") or {}).get("google") or {}
        if google.get("thought_signature"):
            part["thoughtSignature"] = google["thought_signature"]
        parts.append(part)
    return parts


def _function_response(msg: Json, names: dict[str, str]) -> Json:
    call = str(msg.get("tool_call_id"))
    if call not in names:
        raise UnsupportedError(
            f"tool message answers `{call}`, which no earlier assistant tool call has:"
            " Gemini needs the function's name"
        )
    text = canonical.text_of(msg.get("content"))
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    # Gemini wants an object; "output" is the key it reads as the function's result
    response = parsed if isinstance(parsed, dict) else {"output": text}
    return {"functionResponse": {"name": names[call], "response": response}}


def _generation_config(body: Json, model: str) -> Json:
    config: Json = {}
    canonical.copy_params(
        body,
        config,
        (
            ("temperature", "temperature"),
            ("top_p", "topP"),
            ("seed", "seed"),
            ("presence_penalty", "presencePenalty"),
            ("frequency_penalty", "frequencyPenalty"),
        ),
    )
    if (body.get("n") or 1) > 1:
        config["candidateCount"] = body["n"]
    budget = canonical.max_output_tokens(body)
    if budget is not None:
        config["maxOutputTokens"] = budget
    if body.get("stop") is not None:
        config["stopSequences"] = canonical.stops(body["stop"])
    if body.get("logprobs"):
        config["responseLogprobs"] = True
        if body.get("top_logprobs"):
            config["logprobs"] = body["top_logprobs"]
    fmt = body.get("response_format") or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    if fmt.get("type") == "json_schema" and (fmt.get("json_schema") or {}).get("schema"):
        config["responseJsonSchema"] = fmt["json_schema"]["schema"]
    effort = body.get("reasoning_effort")
    if effort is not None:
        config["thinkingConfig"] = _thinking(str(effort), model)
    return config


def _thinking(effort: str, model: str) -> Json:
    """Gemini 2.x takes a token budget; later models take a level and cannot stop thinking."""
    if "gemini-2" in model and effort in THINKING_BUDGETS:
        return {"thinkingBudget": THINKING_BUDGETS[effort]}
    if "gemini-2" not in model and effort in THINKING_LEVELS:
        return {"thinkingLevel": THINKING_LEVELS[effort]}
    raise UnsupportedError(f"`reasoning_effort: {effort}` has no equivalent on {model}")


def _tools(body: Json, out: Json) -> None:
    tools = canonical.function_tools(body)
    if not tools:
        return
    declarations = []
    for tool in tools:
        declaration: Json = {"name": tool["name"]}
        if tool.get("description"):
            declaration["description"] = tool["description"]
        if tool.get("parameters"):
            declaration["parametersJsonSchema"] = tool["parameters"]
        declarations.append(declaration)
    out["tools"] = [{"functionDeclarations": declarations}]
    choice = body.get("tool_choice")
    config: Json
    if choice == "none":
        config = {"mode": "NONE"}
    elif choice == "required":
        config = {"mode": "ANY"}
    elif isinstance(choice, dict):
        config = {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}
    elif any(tool.get("strict") for tool in tools):
        config = {"mode": "VALIDATED"}  # calls, when made, are held to their schemas
    else:
        return
    out["toolConfig"] = {"functionCallingConfig": config}


def embedding_texts(body: Json) -> list[str]:
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise UnsupportedError("Gemini embeds text: send `input` as a string or strings")
    return texts


def encoding_is_base64(body: Json) -> bool:
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise UnsupportedError(f"`encoding_format: {fmt}` is not supported: use float or base64")
    return bool(fmt == "base64")


def embedding_list(
    vectors: list[list[float]], model: str, tokens: int, as_base64: bool = False
) -> Json:
    """OpenAI's embeddings answer; base64 is little-endian float32, as OpenAI sends it."""
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": (
                base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if as_base64 else v
            ),
        }
        for i, v in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
