"""The identifying and rate-limit headers each provider answers with."""

from __future__ import annotations

import os
import uuid

from infra.fake_upstream.errors import ORGANIZATION

OPENAI_VERSION = "2020-10-01"
OPENAI_LIKE = frozenset(("openai", "azure", "mistral"))


def ids(provider: str, given: str | None) -> dict[str, str]:
    """The request-id headers each provider answers with."""
    if provider == "anthropic":
        return {"request-id": given or "req_" + os.urandom(12).hex()}
    if provider == "bedrock":
        return {"x-amzn-requestid": str(uuid.uuid4())}
    if provider == "azure":
        rid = str(uuid.uuid4())
        return {"apim-request-id": rid, "x-request-id": given or rid, "x-ms-region": "East US"}
    if provider in ("gemini", "cohere", "mistral"):
        return {"x-request-id": given or uuid.uuid4().hex} if provider != "gemini" else {}
    return {
        "x-request-id": given or "req_" + os.urandom(16).hex(),
        "openai-version": OPENAI_VERSION,
        "openai-organization": ORGANIZATION,
    }


def limits(provider: str, limits: dict[str, str]) -> dict[str, str]:
    if provider in OPENAI_LIKE:
        return limits
    if provider == "anthropic":
        return {
            "anthropic-ratelimit-requests-limit": limits["x-ratelimit-limit-requests"],
            "anthropic-ratelimit-requests-remaining": limits["x-ratelimit-remaining-requests"],
        }
    return {}
