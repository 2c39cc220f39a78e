"""The errors the fake answers with, worded as api.openai.com words them.

Handlers raise ``ApiError``; the app turns it into the status, OpenAI's error body and headers.
"""

from __future__ import annotations

from typing import Any

JSON_HINT = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent "
    "was not valid JSON. If you have trouble figuring out how to fix this, please contact us "
    "through our help center at help.openai.com.)"
)
NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
    "(with blank username) if you're accessing the API from your browser and are prompted for a "
    "username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)
ORGANIZATION = "org-tollgate-fake"


class ApiError(Exception):
    """An error response: status, ``error`` fields and extra response headers.

    Each provider renders it in its own wire format; ``kind`` names the provider's own error
    type (Anthropic's ``invalid_request_error``, Gemini's ``INVALID_ARGUMENT``, Bedrock's
    ``ValidationException``) when the status alone does not decide it. ``message=None``
    means the provider's default wording for the status.
    """

    def __init__(
        self,
        status: int,
        message: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        *,
        kind: str | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message or f"HTTP {status}")
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}
        self.kind = kind
        self.detail = detail


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def missing(param: str) -> ApiError:
    return ApiError(
        400, f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def invalid_type(param: str, expected: str, value: Any) -> ApiError:
    message = (
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead."
    )
    return ApiError(400, message, param, "invalid_type")


def below_minimum(param: str, minimum: int, value: int) -> ApiError:
    message = (
        f"Invalid '{param}': integer below minimum value. "
        f"Expected a value >= {minimum}, but got {value} instead."
    )
    return ApiError(400, message, param, "integer_below_min_value")


def above_maximum(param: str, maximum: int, value: int) -> ApiError:
    message = (
        f"Invalid '{param}': integer above maximum value. "
        f"Expected a value <= {maximum}, but got {value} instead."
    )
    return ApiError(400, message, param, "integer_above_max_value")


def empty_array(param: str) -> ApiError:
    message = (
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead."
    )
    return ApiError(400, message, param, "empty_array")


def bad_key(presented: str | None) -> ApiError:
    if not presented:
        return ApiError(401, NO_KEY)
    shown = f"{presented[:3]}{'*' * 8}{presented[-4:]}" if len(presented) >= 12 else "*" * 8
    message = (
        f"Incorrect API key provided: {shown}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
    return ApiError(401, message, None, "invalid_api_key")


def model_not_found(model: str) -> ApiError:
    message = f"The model `{model}` does not exist or you do not have access to it."
    return ApiError(404, message, None, "model_not_found")


def rate_limited(model: str, limit: int, retry_s: int, headers: dict[str, str]) -> ApiError:
    message = (
        f"Rate limit reached for {model} in organization {ORGANIZATION} on requests per min "
        f"(RPM): Limit {limit}, Used {limit}, Requested 1. Please try again in {retry_s}s. "
        "Visit https://platform.openai.com/account/rate-limits to learn more."
    )
    return ApiError(429, message, None, "rate_limit_exceeded", headers)
