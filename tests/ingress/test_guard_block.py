"""Admission refuses a key the guards blocked, and throttles a throttled one, from the
``key.blocked`` records it reads on ``tollgate.admission`` (fed here directly, no Kafka)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import ConsumerRecord

from ingress.admission.controller import NOT_METERED, Admission
from ingress.admission.local import LocalAdmissions
from ingress.admission.view import AdmissionView
from ingress.auth import Principal
from ingress.errors import KeyBlockedError, RateLimitError, error_response
from schemas.config import TollgateConfig
from schemas.events import Event, KeyBlocked, now_ms

ANN = Principal(tenant="acme", key_id="k-ann", user="ann")
BOB = Principal(tenant="acme", key_id="k-bob", user="bob")
BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
ESCALATION = {"guards": {"escalation": {"max_injection_attempts": 3}}}


def _admission(**sections: Any) -> Admission:
    config = TollgateConfig.model_validate(sections)
    local = LocalAdmissions(hold_s=30, on_covered=lambda _: None)
    return Admission(config, AdmissionView("127.0.0.1:1", local.covered), local)


def _publish(admission: Admission, event: Event) -> None:
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        "tollgate.admission", 0, 0, 0, 0, b"guard:x", event.encode(), None, 0, 0, ()
    )
    admission.view.apply(record)


def _block(key_id: str, action: str = "block", since: int = 0, **kw: Any) -> KeyBlocked:
    since = since or now_ms() - 1000
    fields: dict[str, Any] = {
        "request_id": "r9",
        "tenant": "acme",
        "key_id": key_id,
        "action": action,
        "reason": "injection",
        "count": 5,
        "window_s": 600,
        "since_ms": since,
        "until_ms": since + 900_000,
        **kw,
    }
    return KeyBlocked(**fields)


def _check(admission: Admission, who: Principal = ANN) -> Any:
    return admission.check(admission.decision(who, "gpt-4o-mini", "openai-main", BODY, None))


def test_an_escalation_config_turns_admission_on() -> None:
    assert not _admission().enabled
    assert _admission(**ESCALATION).enabled


def test_a_blocked_key_is_refused_until_the_block_ends_and_others_pass() -> None:
    admission = _admission(**ESCALATION)
    assert _check(admission) is NOT_METERED
    _publish(admission, _block("k-ann"))
    with pytest.raises(KeyBlockedError) as refused:
        _check(admission)
    error = refused.value
    body = error.body()["error"]
    assert error.status == 403 and body["code"] == "key_blocked"
    assert 895 <= int(error.headers["retry-after"]) <= 900
    assert "blocked until" in error.message and "5 prompt-injection attempts" in error.message
    assert "admin" in error.message
    assert error_response(error).headers["retry-after"] == error.headers["retry-after"]
    assert _check(admission, BOB) is NOT_METERED


def test_an_expired_or_superseded_block_admits() -> None:
    admission = _admission(**ESCALATION)
    past = now_ms() - 2_000_000
    _publish(admission, _block("k-ann", since=past))  # ended 1100 s ago
    assert _check(admission) is NOT_METERED
    newer = _block("k-ann")
    _publish(admission, newer)
    _publish(admission, _block("k-ann", since=past))  # an older record read later
    assert admission.view.block_of("k-ann") == newer
    with pytest.raises(KeyBlockedError):
        _check(admission)


def test_a_throttled_key_gets_its_rate_and_then_a_429() -> None:
    admission = _admission(**ESCALATION)
    _publish(admission, _block("k-ann", action="throttle", rpm=3))
    for _ in range(3):
        _check(admission)
    with pytest.raises(RateLimitError) as refused:
        _check(admission)
    error = refused.value
    assert error.status == 429 and error.body()["error"]["code"] == "key_throttled"
    assert error.headers["x-ratelimit-limit"] == "3"
    assert 1 <= int(error.headers["retry-after"]) <= 60
    assert "throttled to 3 requests/min" in error.message
    _check(admission, BOB)
