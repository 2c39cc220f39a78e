"""Reading a Bedrock ``Converse`` request as AWS validates it (``ValidationException``).

Prompt tokens count the system texts, text blocks, tool uses and results (compact JSON) and
the tool specs, plus 85 per image (``reply.prompt_tokens``).
"""

from __future__ import annotations

from typing import Any

import orjson

from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.providers.anthropic_request import Prompt
from infra.fake_upstream.providers.reply import Ask, ToolSpec

FIELDS = frozenset(
    ("messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig",
     "additionalModelRequestFields", "promptVariables", "additionalModelResponseFieldPaths",
     "requestMetadata", "performanceConfig", "serviceTier", "outputConfig")
)  # fmt: skip
FORMATS = ("png", "jpeg", "gif", "webp")
START = (
    "A conversation must start with a user message. Try again with a conversation that starts "
    "with a user message."
)
ALTERNATE = (
    "A conversation must alternate between user and assistant roles. Make sure the "
    "conversation alternates between user and assistant roles and try again."
)


def invalid(message: str) -> ApiError:
    return ApiError(400, message, kind="ValidationException")


def _block(block: Any, where: str, prompt: Prompt) -> bool:
    """Reads one content block; True when it is a tool result."""
    if not isinstance(block, dict) or len(block) != 1:
        raise invalid(
            f"1 validation error detected: Value at '{where}' failed to satisfy "
            "constraint: Member must have exactly one member set"
        )
    ((kind, value),) = block.items()
    if kind == "text" and isinstance(value, str):
        prompt.texts.append(value)
    elif kind == "image":
        source = value.get("source") if isinstance(value, dict) else None
        if value.get("format") not in FORMATS or not isinstance(source, dict):
            raise invalid(
                f"1 validation error detected: Value at '{where}.image' failed to "
                "satisfy constraint: format and source are required"
            )
        prompt.images += 1
    elif kind == "toolUse":
        if not all(isinstance(value.get(k), str) for k in ("toolUseId", "name")):
            raise invalid(f"The toolUse at {where} needs toolUseId and name.")
        prompt.texts += [value["name"], orjson.dumps(value.get("input")).decode()]
    elif kind == "toolResult":
        if not isinstance(value.get("toolUseId"), str) or not isinstance(
            value.get("content"), list
        ):
            raise invalid(f"The toolResult at {where} needs toolUseId and content.")
        for item in value["content"]:
            text = item.get("text") if isinstance(item, dict) else None
            prompt.texts.append(text if isinstance(text, str) else orjson.dumps(item).decode())
        return True
    elif kind not in (
        "document",
        "video",
        "audio",
        "cachePoint",
        "guardContent",
        "reasoningContent",
        "citationsContent",
    ):
        raise invalid(f"Unknown content block type '{kind}' at {where}.")
    return False


def _tools(body: dict[str, Any], prompt: Prompt) -> tuple[tuple[ToolSpec, ...], str]:
    config = body.get("toolConfig")
    if config is None:
        return (), "auto"
    tools = config.get("tools") if isinstance(config, dict) else None
    if not isinstance(tools, list) or not tools:
        raise invalid(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    specs = []
    for tool in tools:
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        schema = (spec or {}).get("inputSchema", {}).get("json")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or schema is None:
            raise invalid("A toolSpec needs a name and an inputSchema with json.")
        prompt.texts += [spec["name"], spec.get("description") or "", orjson.dumps(schema).decode()]
        specs.append(ToolSpec(spec["name"], schema))
    choice = config.get("toolChoice") or {"auto": {}}
    if "any" in choice:
        return tuple(specs), "required"
    if "tool" in choice:
        name = choice["tool"].get("name")
        if name not in {s.name for s in specs}:
            raise invalid(f"The tool {name} in toolChoice is not defined in tools.")
        return tuple(specs), str(name)
    return tuple(specs), "auto"


def parse(body: Any, model: str, default_tokens: int) -> tuple[Ask, Prompt]:
    if not isinstance(body, dict):
        raise invalid("Malformed input request, please reformat your input and try again.")
    for name in body:
        if name not in FIELDS:
            raise invalid(
                f"Malformed input request: extraneous key [{name}] is not permitted, "
                "please reformat your input and try again."
            )
    prompt = Prompt()
    for i, block in enumerate(body.get("system") or []):
        _block(block, f"system.{i}.member", prompt)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid(
            "The model returned the following errors: messages: at least one message is required"
        )
    after_tool = False
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise invalid(
                f"1 validation error detected: Value '{role}' at 'messages.{i + 1}."
                "member.role' failed to satisfy constraint: Member must satisfy enum "
                "value set: [user, assistant]"
            )
        if i == 0 and role != "user":
            raise invalid(START)
        if i and messages[i - 1].get("role") == role:
            raise invalid(ALTERNATE)
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise invalid(
                f"The content field in the Message object at messages.{i} is empty. "
                "Add a ContentBlock object to the content field and try again."
            )
        results = [
            _block(b, f"messages.{i + 1}.member.content.{j + 1}.member", prompt)
            for j, b in enumerate(content)
        ]
        after_tool = any(results)
    config = body.get("inferenceConfig") or {}
    budget = config.get("maxTokens")
    if budget is not None and (not isinstance(budget, int) or budget < 1):
        raise invalid(
            "1 validation error detected: Value at 'inferenceConfig.maxTokens' failed "
            "to satisfy constraint: Member must have value greater than or equal to 1"
        )
    for name in ("temperature", "topP"):
        value = config.get(name)
        if value is not None and not (isinstance(value, int | float) and 0 <= value <= 1):
            raise invalid(
                f"1 validation error detected: Value at 'inferenceConfig.{name}' "
                "failed to satisfy constraint: Member must be between 0 and 1"
            )
    specs, choice = _tools(body, prompt)
    ask = Ask(
        model=model,
        material=[body.get("system"), messages],
        budget=budget if budget is not None and budget < default_tokens else None,
        default_tokens=default_tokens,
        stop=tuple(config.get("stopSequences") or ()),
        tools=specs,
        tool_choice=choice,
        after_tool=after_tool,
    )
    return ask, prompt
