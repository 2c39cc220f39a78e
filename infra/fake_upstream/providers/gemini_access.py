"""Gemini's doorway: the API key (header or ``?key=``), the model check, the error body.

Errors are ``{"error": {"code", "message", "status"}}``; a 429 says when to retry in a
``RetryInfo`` detail (``retryDelay``), not in a Retry-After header.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.faults import Faults
from infra.fake_upstream.providers.common import dumps, require_key
from infra.fake_upstream.settings import known
from infra.fake_upstream.upstream import Check, Upstream

STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
DEFAULTS = {
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}
UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
BAD_KEY_INFO = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "API_KEY_INVALID",
    "domain": "googleapis.com",
    "metadata": {"service": "generativelanguage.googleapis.com"},
}


def render(exc: ApiError) -> Response:
    error: dict[str, Any] = {
        "code": exc.status,
        "message": exc.message or DEFAULTS.get(exc.status, f"HTTP {exc.status}"),
        "status": exc.kind if exc.kind in STATUS.values() else STATUS.get(exc.status, "UNKNOWN"),
    }
    headers = dict(exc.headers)
    retry = headers.pop("retry-after", None)
    if exc.status == 429 and retry is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry}s"}
        ]
    if exc.detail is not None:
        error["details"] = exc.detail
    return Response(dumps({"error": error}), exc.status, headers, "application/json")


def check_key(upstream: Upstream) -> Check:
    def check(request: Request) -> None:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            raise ApiError(403, UNREGISTERED, kind="PERMISSION_DENIED")
        if not require_key(key, upstream.settings.api_key):
            message = "API key not valid. Please pass a valid API key."
            raise ApiError(400, message, kind="INVALID_ARGUMENT", detail=[BAD_KEY_INFO])

    return check


async def admitted(
    upstream: Upstream, request: Request, method: str
) -> tuple[Faults, dict[str, str], Any, str]:
    model = request.path_params["model"]
    faults, headers, _ = await upstream.admit(request, "gemini", check_key(upstream), model)
    if not known(model, upstream.settings.gemini_models):
        message = (
            f"models/{model} is not found for API version v1beta, or is not supported for "
            f"{method}. Call ListModels to see the list of available models and their "
            "supported methods."
        )
        raise ApiError(404, message, headers=headers)
    return faults, headers, await upstream.parsed(request), model
