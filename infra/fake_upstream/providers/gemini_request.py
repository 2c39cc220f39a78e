"""Reading a Gemini ``GenerateContentRequest`` (v1beta JSON, camelCase) as Google validates it.

Unknown fields are a 400 ``Invalid JSON payload received. Unknown name "x"``; roles are
``user`` and ``model`` (``function`` for function responses). Prompt tokens count every text
part, function call and response (as compact JSON), the system instruction and the function
declarations, plus 85 per inline or file part (``reply.prompt_tokens``).
"""

from __future__ import annotations

from typing import Any

import orjson

from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.providers.anthropic_request import Prompt
from infra.fake_upstream.providers.reply import Ask, ToolSpec

REQUEST = frozenset(
    ("contents", "systemInstruction", "generationConfig", "tools", "toolConfig",
     "safetySettings", "cachedContent", "labels", "model")
)  # fmt: skip
CONFIG = frozenset(
    ("temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "candidateCount", "seed",
     "responseMimeType", "responseSchema", "responseJsonSchema", "presencePenalty",
     "frequencyPenalty", "responseLogprobs", "logprobs", "thinkingConfig", "responseModalities",
     "mediaResolution", "speechConfig", "enableEnhancedCivicAnswers")
)  # fmt: skip
PARTS = frozenset(
    ("text", "inlineData", "fileData", "functionCall", "functionResponse", "thought",
     "thoughtSignature", "executableCode", "codeExecutionResult", "videoMetadata")
)  # fmt: skip
MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}


def invalid(message: str) -> ApiError:
    return ApiError(400, message, kind="INVALID_ARGUMENT")


def _unknown(given: dict[str, Any], known: frozenset[str], where: str) -> None:
    for name in given:
        if name not in known:
            at = f" at '{where}'" if where else ""
            raise invalid(
                f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
            )


def _parts(parts: Any, where: str, prompt: Prompt) -> None:
    if not isinstance(parts, list) or not parts:
        raise invalid(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.")
    for part in parts:
        if not isinstance(part, dict):
            raise invalid(f"Invalid value at '{where}.parts' (Part), {part!r}")
        _unknown(part, PARTS, f"{where}.parts[0]")
        if isinstance(part.get("text"), str):
            prompt.texts.append(part["text"])
        for key in ("inlineData", "fileData"):
            if key in part:
                data = part[key]
                if not isinstance(data, dict) or not isinstance(data.get("mimeType"), str):
                    raise invalid(f"* GenerateContentRequest.{where}.{key}.mime_type: required")
                prompt.images += 1
        for key, inner in (("functionCall", "args"), ("functionResponse", "response")):
            if key in part:
                call = part[key]
                if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                    raise invalid(f"* GenerateContentRequest.{where}.{key}.name: Name is empty.")
                prompt.texts += [call["name"], orjson.dumps(call.get(inner) or {}).decode()]


def _config(body: dict[str, Any]) -> dict[str, Any]:
    config = body.get("generationConfig") or {}
    if not isinstance(config, dict):
        raise invalid("Invalid value at 'generation_config'")
    _unknown(config, CONFIG, "generation_config")
    stop = config.get("stopSequences") or []
    if not isinstance(stop, list) or len(stop) > 5:
        raise invalid("* GenerateContentRequest.generation_config.stop_sequences: at most 5.")
    count = config.get("candidateCount", 1)
    if not isinstance(count, int) or not 1 <= count <= 8:
        raise invalid("* GenerateContentRequest.generation_config.candidate_count: must be 1-8.")
    budget = config.get("maxOutputTokens")
    if budget is not None and (not isinstance(budget, int) or budget < 1):
        raise invalid("* GenerateContentRequest.generation_config.max_output_tokens: must be > 0")
    return config


def _tools(body: dict[str, Any], prompt: Prompt) -> tuple[ToolSpec, ...]:
    specs = []
    for tool in body.get("tools") or []:
        for declaration in (tool or {}).get("functionDeclarations") or []:
            name = declaration.get("name") if isinstance(declaration, dict) else None
            if not isinstance(name, str) or not name:
                raise invalid(
                    "* GenerateContentRequest.tools[0].function_declarations[0].name: "
                    "Name is empty."
                )
            schema = declaration.get("parameters") or declaration.get("parametersJsonSchema")
            prompt.texts += [
                name,
                declaration.get("description") or "",
                orjson.dumps(schema).decode(),
            ]
            specs.append(ToolSpec(name, schema))
    return tuple(specs)


def _mode(body: dict[str, Any], specs: tuple[ToolSpec, ...]) -> str:
    config = ((body.get("toolConfig") or {}).get("functionCallingConfig")) or {}
    mode = MODES.get(str(config.get("mode", "AUTO")).upper())
    if mode is None:
        raise invalid(
            f"Invalid value at 'tool_config.function_calling_config.mode', \"{config.get('mode')}\""
        )
    allowed = config.get("allowedFunctionNames") or []
    if mode == "required" and len(allowed) == 1 and allowed[0] in {s.name for s in specs}:
        return str(allowed[0])
    return mode


def parse(body: Any, model: str, default_tokens: int) -> tuple[Ask, Prompt, int]:
    """The ``Ask``, the prompt's texts and the candidate count."""
    if not isinstance(body, dict):
        raise invalid("Invalid JSON payload received. Expected an object.")
    _unknown(body, REQUEST, "")
    prompt = Prompt()
    system = body.get("systemInstruction")
    if system is not None:
        _parts((system or {}).get("parts"), "system_instruction", prompt)
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid("* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(contents):
        role = content.get("role", "user") if isinstance(content, dict) else None
        if role not in ("user", "model", "function"):
            raise invalid("Please use a valid role: user, model.")
        _parts(content.get("parts"), f"contents[{i}]", prompt)
    config = _config(body)
    specs = _tools(body, prompt)
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    is_json = config.get("responseMimeType") == "application/json"
    budget = config.get("maxOutputTokens")
    last_parts = contents[-1].get("parts") or []
    ask = Ask(
        model=model,
        material=[system, contents],
        budget=budget if budget is not None and budget < default_tokens else None,
        default_tokens=default_tokens,
        stop=tuple(config.get("stopSequences") or ()),
        tools=specs,
        tool_choice=_mode(body, specs),
        after_tool=any("functionResponse" in p for p in last_parts if isinstance(p, dict)),
        json_schema=(schema or True) if is_json else None,
        seed=config.get("seed"),
    )
    return ask, prompt, config.get("candidateCount", 1)
