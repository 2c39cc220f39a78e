"""Google Gemini's Generative Language API (v1beta), both ways.

Turns are ``contents`` with roles ``user`` and ``model``; system prompts move to
``systemInstruction``; sampling knobs go in ``generationConfig``. Tool calls carry no ids on
the Developer API, so ids are minted here, stable (a hash of the response id, candidate,
position and name), and a tool message is matched to its function's name through the
assistant turn that made the call. Gemini 3 rejects a history whose function calls lost
their ``thoughtSignature``: it travels on the tool call as
``extra_content.google.thought_signature``, Google's own OpenAI-compatibility field. JSON
Schemas go as ``parametersJsonSchema`` / ``responseJsonSchema``, which take JSON Schema as
it is (``parameters`` / ``responseSchema`` take an OpenAPI subset that rejects some of it).
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from ingress.providers import canonical
from ingress.providers.base import (
    Failure,
    Json,
    UpstreamCall,
    settings_secret,
)
from ingress.providers.gemini_answer import choice_of, read_failure, usage
from ingress.providers.gemini_request import (
    API,
    embedding_list,
    embedding_texts,
    encoding_is_base64,
    model_name,
    to_gemini_request,
)
from ingress.providers.gemini_stream import GeminiStream
from schemas.routing_config import ProviderSettings
from schemas.tokens import count_text


class GeminiAdapter:
    kind = "gemini"

    def __init__(self, settings: ProviderSettings) -> None:
        self.base = settings.endpoint()
        self.headers = {"content-type": "application/json", **settings.headers}
        key = settings_secret(settings, "api_key")
        if key:
            self.headers["x-goog-api-key"] = key

    def url(self, model: str, method: str) -> str:
        return f"{self.base}/{API}/{model_name(model)}:{method}"

    def chat_call(self, body: Json, upstream_model: str, stream: bool) -> UpstreamCall:
        payload = orjson.dumps(to_gemini_request(body, upstream_model))
        if stream:
            url = self.url(upstream_model, "streamGenerateContent") + "?alt=sse"
        else:
            url = self.url(upstream_model, "generateContent")
        return UpstreamCall(url, payload, self.headers)

    def chat_result(self, payload: bytes, public_model: str) -> Json:
        answer = orjson.loads(payload)
        if not isinstance(answer, dict) or answer.keys().isdisjoint(
            ("candidates", "promptFeedback")
        ):
            raise ValueError("the answer is not a GenerateContentResponse")
        rid = str(answer.get("responseId") or "")
        choices = [
            choice_of(candidate, position, rid)
            for position, candidate in enumerate(answer.get("candidates") or ())
        ]
        if not choices:  # the prompt itself was blocked (promptFeedback.blockReason)
            choices = [canonical.choice(0, canonical.message(""), "content_filter")]
        use = usage(answer.get("usageMetadata") or {})
        return canonical.completion(rid, public_model, choices, use)

    def stream_decoder(self, public_model: str) -> GeminiStream:
        return GeminiStream(public_model)

    def failure(self, status: int, payload: bytes, headers: Mapping[str, str]) -> Failure:
        return read_failure(status, payload, headers)

    def embeddings_call(self, body: Json, upstream_model: str) -> UpstreamCall:
        texts = embedding_texts(body)
        encoding_is_base64(body)  # refuses an encoding it cannot give, before the call
        request: Json = {"model": model_name(upstream_model)}
        if body.get("dimensions") is not None:
            request["outputDimensionality"] = body["dimensions"]
        requests = [{**request, "content": {"parts": [{"text": text}]}} for text in texts]
        payload = orjson.dumps({"requests": requests})
        return UpstreamCall(self.url(upstream_model, "batchEmbedContents"), payload, self.headers)

    def embeddings_result(self, payload: bytes, public_model: str, request: Json) -> Json:
        answer = orjson.loads(payload)
        if not isinstance(answer, dict) or not isinstance(answer.get("embeddings"), list):
            raise ValueError("the answer is not a BatchEmbedContentsResponse")
        tokens = sum(count_text(text, public_model) for text in embedding_texts(request))
        as_base64 = encoding_is_base64(request)
        vectors = [item["values"] for item in answer["embeddings"]]
        return embedding_list(vectors, public_model, tokens, as_base64)

    def health_call(self) -> UpstreamCall | None:
        return UpstreamCall(f"{self.base}/{API}/models?pageSize=1", b"", self.headers, "GET")
