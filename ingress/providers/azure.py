"""Azure OpenAI: OpenAI's bodies, but the deployment is in the path and the key in ``api-key``.

``upstream_model`` names the Azure *deployment*; ``api_version`` is required by Azure.
"""

from __future__ import annotations

from ingress.providers.base import Json, UpstreamCall, settings_secret
from ingress.providers.openai import OpenAIAdapter
from schemas.routing_config import ProviderSettings

DEFAULT_API_VERSION = "2024-10-21"


class AzureAdapter(OpenAIAdapter):
    kind = "azure"

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self.headers.pop("authorization", None)
        key = settings_secret(settings, "api_key")
        if key:
            self.headers["api-key"] = key
        self.api_version = settings.api_version or DEFAULT_API_VERSION

    def _url(self, deployment: str, operation: str) -> str:
        return (
            f"{self.base}/openai/deployments/{deployment}/{operation}"
            f"?api-version={self.api_version}"
        )

    def chat_url(self, upstream_model: str) -> str:
        return self._url(upstream_model, "chat/completions")

    def embeddings_url(self, upstream_model: str) -> str:
        return self._url(upstream_model, "embeddings")

    def chat_body(self, body: Json, upstream_model: str, stream: bool) -> Json:
        out = super().chat_body(body, upstream_model, stream)
        out.pop("model", None)  # the deployment in the path decides
        return out

    def health_call(self) -> UpstreamCall | None:
        return None
