"""The two events the ingress publishes for one answered chat request, for tests that write
``tollgate.requests`` themselves."""

from __future__ import annotations

from typing import Any

from schemas.events import RequestReceived, ResponseCompleted


def answered(
    tenant: str,
    rid: str,
    *,
    usage: dict[str, Any] | None,
    outputs: list[str] | None = None,
    messages: list[dict[str, Any]] | None = None,
    key_id: str = "k",
    provider: str = "fake",
    est_usd: str = "0",
    est_tokens: int = 0,
    deployment: str = "",
) -> tuple[RequestReceived, ResponseCompleted]:
    """``request.received`` (with its estimate) and ``response.completed`` (``usage`` as the
    provider reported it, None for none)."""
    received = RequestReceived(
        request_id=rid,
        tenant=tenant,
        key_id=key_id,
        endpoint="/v1/chat/completions",
        model="gpt-4o-mini",
        body={"messages": messages or [{"role": "user", "content": "Count me."}]},
        est_usd=est_usd,
        est_tokens=est_tokens,
    )
    completed = ResponseCompleted(
        request_id=rid,
        tenant=tenant,
        key_id=key_id,
        provider=provider,
        model="gpt-4o-mini",
        status=200,
        latency_ms=5.0,
        outputs=outputs or [],
        finish_reason="stop",
        usage=usage,
        deployment=deployment,
    )
    return received, completed
