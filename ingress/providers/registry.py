"""Provider kind → adapter. The one place that knows every vendor module."""

from __future__ import annotations

import importlib

from ingress.providers.base import Adapter
from schemas.routing_config import ProviderSettings

ADAPTERS = {
    "openai": "ingress.providers.openai:OpenAIAdapter",
    "openai_compatible": "ingress.providers.openai:OpenAICompatibleAdapter",
    "azure": "ingress.providers.azure:AzureAdapter",
    "mistral": "ingress.providers.mistral:MistralAdapter",
    "anthropic": "ingress.providers.anthropic:AnthropicAdapter",
    "gemini": "ingress.providers.gemini:GeminiAdapter",
    "bedrock": "ingress.providers.bedrock:BedrockAdapter",
    "cohere": "ingress.providers.cohere:CohereAdapter",
}


def build_adapter(settings: ProviderSettings) -> Adapter:
    module, _, name = ADAPTERS[settings.kind].partition(":")
    adapter: Adapter = getattr(importlib.import_module(module), name)(settings)
    return adapter
