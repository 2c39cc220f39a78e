"""AWS Bedrock Runtime: ``Converse`` for chat, ``InvokeModel`` for Titan embeddings.

Calls go to ``/model/{modelId}/converse`` (``/converse-stream`` when streaming), each
SigV4-signed here, per request (the signature covers the time and the body's hash), for
service ``bedrock`` in the provider's region, with botocore's signer. Credentials are the
provider's ``aws_access_key_id``/``aws_secret_access_key``/``aws_session_token``; else its
``api_key`` as a Bedrock API key (Bearer); else the ``AWS_*`` environment variables (botocore's
``EnvProvider``). Profiles, SSO and instance roles are not looked up: refreshing them blocks
on I/O. The request side is ``bedrock_request``, answers and streams ``bedrock_response``.
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Mapping
from urllib.parse import quote

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, EnvProvider

from ingress.providers import bedrock_response
from ingress.providers.base import (
    Failure,
    Json,
    UnsupportedError,
    UpstreamCall,
    retry_after,
    settings_secret,
)
from ingress.providers.bedrock_request import to_converse
from ingress.providers.bedrock_response import BedrockStream
from schemas.routing_config import ProviderSettings

SERVICE = "bedrock"
REGION_IN_HOST = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.")
TITAN_DIMENSIONS = (256, 512, 1024)


class BedrockAdapter:
    kind = "bedrock"

    def __init__(self, settings: ProviderSettings) -> None:
        self.base = settings.endpoint()
        self.headers = {"content-type": "application/json", **settings.headers}
        self.api_key = settings_secret(settings, "api_key")
        credentials = _credentials(settings, self.api_key is None)
        match = REGION_IN_HOST.search(self.base)
        self.region = settings.region or (match.group(1) if match else None)
        self.signer: SigV4Auth | None = None
        if credentials is not None:
            if self.region is None:
                raise ValueError("a `bedrock` provider signing with AWS keys needs `region`")
            self.signer = SigV4Auth(credentials, SERVICE, self.region)

    def url(self, model: str, action: str) -> str:
        # ":" stays literal: aiohttp (yarl) would decode %3A before sending, and the path
        # signed must be the path sent. "/" (in ARNs) must be %2F.
        return f"{self.base}/model/{quote(model, safe=':')}/{action}"

    def signed(self, url: str, payload: bytes) -> UpstreamCall:
        """The call with its auth; SigV4 is computed now, so call this per request."""
        headers = dict(self.headers)
        if self.signer is not None:
            request = AWSRequest("POST", url, headers, payload)
            self.signer.add_auth(request)  # stamps X-Amz-Date, signs the body's hash
            headers = dict(request.headers.items())
        elif self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return UpstreamCall(url, payload, headers)

    def chat_call(self, body: Json, upstream_model: str, stream: bool) -> UpstreamCall:
        action = "converse-stream" if stream else "converse"
        return self.signed(self.url(upstream_model, action), orjson.dumps(to_converse(body)))

    def chat_result(self, payload: bytes, public_model: str) -> Json:
        return bedrock_response.completion(orjson.loads(payload), public_model)

    def stream_decoder(self, public_model: str) -> BedrockStream:
        return BedrockStream(public_model)

    def failure(self, status: int, payload: bytes, headers: Mapping[str, str]) -> Failure:
        """``{"message"}`` (``Message`` from some front ends), the error's name in
        ``x-amzn-ErrorType`` as ``Name:namespace``. AWS sends no Retry-After."""
        lowered = {name.lower(): value for name, value in headers.items()}
        kind = lowered.get("x-amzn-errortype", "").split(":", 1)[0]
        try:
            parsed = orjson.loads(payload)
        except orjson.JSONDecodeError:
            parsed = None
        message = ""
        if isinstance(parsed, dict):
            message = str(parsed.get("message") or parsed.get("Message") or "")
            kind = kind or str(parsed.get("__type") or "").rsplit("#", 1)[-1]
        if not message:
            message = payload[:300].decode("utf-8", "replace").strip() or f"HTTP {status}"
        if kind in ("ThrottlingException", "ModelNotReadyException") and status < 500:
            status = 429  # retryable, whatever a proxy in between made of it
        return Failure(status, message, kind, retry_after(lowered))

    def embeddings_call(self, body: Json, upstream_model: str) -> UpstreamCall:
        """Titan's InvokeModel body: one text per call (``{"inputText"}``)."""
        if "titan-embed" not in upstream_model:
            raise UnsupportedError(
                f"Bedrock embeddings are translated for Amazon Titan models, not {upstream_model}"
            )
        given = body.get("input")
        texts = [given] if isinstance(given, str) else given
        if not isinstance(texts, list) or len(texts) != 1 or not isinstance(texts[0], str):
            raise UnsupportedError("Titan embeds one text per call: send `input` as one string")
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise UnsupportedError(
                f"`encoding_format: {fmt}` is not supported: use float or base64"
            )
        out: Json = {"inputText": texts[0]}
        dimensions = body.get("dimensions")
        if dimensions is not None:
            if "titan-embed-text-v2" not in upstream_model or dimensions not in TITAN_DIMENSIONS:
                raise UnsupportedError(
                    "`dimensions` is Titan Text Embeddings v2's only: 256, 512 or 1024"
                )
            out["dimensions"] = dimensions
        return self.signed(self.url(upstream_model, "invoke"), orjson.dumps(out))

    def embeddings_result(self, payload: bytes, public_model: str, request: Json) -> Json:
        answer = orjson.loads(payload)
        vector = answer.get("embedding") if isinstance(answer, dict) else None
        if not isinstance(vector, list):
            raise ValueError("the answer has no Titan embedding")
        tokens = int(answer.get("inputTextTokenCount") or 0)
        if request.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            item: Json = {"object": "embedding", "index": 0, "embedding": encoded}
        else:
            item = {"object": "embedding", "index": 0, "embedding": vector}
        return {
            "object": "list",
            "data": [item],
            "model": public_model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def health_call(self) -> UpstreamCall | None:
        return None  # the runtime has no cheap GET


def _credentials(settings: ProviderSettings, from_env: bool) -> Credentials | None:
    key_id = settings_secret(settings, "aws_access_key_id")
    secret = settings_secret(settings, "aws_secret_access_key")
    if key_id and secret:
        return Credentials(key_id, secret, settings_secret(settings, "aws_session_token"))
    return EnvProvider().load() if from_env else None
