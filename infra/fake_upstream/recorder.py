"""The last request each provider received, for ``GET /_fake/last?provider=NAME``.

Gateway tests assert on what actually left the gateway (that redacted text never did, that
the adapter mapped a field). Credentials never enter the record: auth headers are listed by
name only and a ``key`` query parameter keeps its name but not its value.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

AUTH_HEADERS = frozenset(
    (
        "authorization",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "x-amz-security-token",
        "proxy-authorization",
        "cookie",
    )
)
SECRET_QUERY = frozenset(("key", "api-key", "x-amz-signature", "x-amz-credential"))


def record(provider: str, request: Request, body: Any) -> dict[str, Any]:
    headers = {}
    auth = []
    for name, value in request.headers.items():
        if name in AUTH_HEADERS:
            auth.append(name)
        else:
            headers[name] = value
    query = {
        name: ("<redacted>" if name.lower() in SECRET_QUERY else value)
        for name, value in request.query_params.items()
    }
    return {
        "provider": provider,
        "method": request.method,
        "path": request.url.path,
        "query": query,
        "headers": headers,
        "auth_headers": sorted(auth),
        "body": body,
    }


class LastRequests:
    def __init__(self) -> None:
        self._last: dict[str, dict[str, Any]] = {}
        self._seq = 0

    def keep(self, entry: dict[str, Any]) -> None:
        self._seq += 1
        self._last[entry["provider"]] = {**entry, "seq": self._seq}

    def get(self, provider: str | None) -> dict[str, Any] | None:
        if provider is None:
            return max(self._last.values(), key=lambda e: e["seq"], default=None)
        return self._last.get(provider)

    def clear(self) -> None:
        self._last.clear()
