"""The gateway's errors: one small hierarchy, mapped to HTTP and OpenAI's shape in one place.

Every error a client sees is ``{"error": {"message", "type", "param", "code"}}`` with the
status of its class, so the official SDKs raise their matching exception types.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response


class GatewayError(Exception):
    status: int = 500
    type: str = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.code
        self.headers = headers or {}
        self.attempts: list[dict[str, Any]] = []
        """What the gateway tried before giving up (deployments, statuses), for the events."""

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"


class GuardBlockedError(InvalidRequestError):
    """The content policy refused the request (or withheld the answer): the message names
    what was found, by type only, never the values."""

    code = "content_policy_violation"


class AuthenticationError(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class NotFoundError(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class PermissionDeniedError(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "model_not_allowed"


class KeyBlockedError(GatewayError):
    """The guards blocked this key for a while (repeated injection attempts or leaks)."""

    status = 403
    type = "permission_error"
    code = "key_blocked"


class ModelNotFoundError(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RateLimitError(GatewayError):
    """The provider kept throttling after retries (or a gateway limit said no)."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceededError(GatewayError):
    """A hard budget would be exceeded by this request; it resets at the period's end."""

    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class OverloadedError(GatewayError):
    """A bulkhead is full or every deployment's breaker is open: shed load, say when."""

    status = 503
    type = "service_unavailable"
    code = "overloaded"


class ClientClosedError(GatewayError):
    """The client left before the gateway answered (nginx's 499). Nobody reads the
    answer; the request's event records it."""

    status = 499
    type = "client_closed_request"
    code = "client_closed_request"


class PayloadTooLargeError(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UpstreamError(GatewayError):
    """The provider could not be reached or broke the protocol."""

    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class UpstreamTimeoutError(GatewayError):
    status = 504
    type = "timeout"
    code = "upstream_timeout"


def error_response(exc: GatewayError, request_id: str | None = None) -> Response:
    headers = dict(exc.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return Response(orjson.dumps(exc.body()), exc.status, headers, "application/json")


def unexpected_response(request_id: str | None = None) -> Response:
    """A bug's answer: OpenAI's shape and the request id to report, never a bare 500."""
    error = GatewayError(
        "internal gateway error; retry, and report the x-request-id if it persists"
    )
    return error_response(error, request_id)


def install_handlers(app: FastAPI) -> None:
    """Nothing leaves the gateway as a bare 500 or an HTML page."""

    async def gateway_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return error_response(exc, getattr(request.state, "request_id", None))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = NotFoundError if exc.status_code == 404 else InvalidRequestError
        error = kind(f"{request.method} {request.url.path}: {exc.detail}")
        error.status = exc.status_code
        return error_response(error)

    async def validation_error(request: Request, exc: Exception) -> Response:
        return error_response(InvalidRequestError(f"invalid request: {exc}"))

    async def unexpected(request: Request, exc: Exception) -> Response:
        return unexpected_response(getattr(request.state, "request_id", None))

    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
