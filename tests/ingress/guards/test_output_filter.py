"""The answer side: redaction and blocking in JSON and streams, bounded hold-back,
placeholders restored (reversible) even when split across chunks."""

from __future__ import annotations

from typing import Any

import pytest

from ingress.guards import InlineGuard, Inspection, OutputBlocked, OutputGuard, StreamFilter
from schemas.guards_config import GuardSettings


def inspection(body_text: str = "hi", **policy: Any) -> Inspection:
    guard = InlineGuard(GuardSettings.model_validate(policy))
    body = {"model": "m", "messages": [{"role": "user", "content": body_text}]}
    found = guard.inspect("t", "m", body)
    assert found is not None
    return found


def chunks(text: str, size: int) -> list[dict[str, Any]]:
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    out: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces
    ]
    out.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return out


def relay(filt: StreamFilter, parts: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """What the client would read: the whole text, and what each chunk carried."""
    carried = []
    for chunk in parts:
        out = filt.chunk(chunk)
        carried.append("".join(c["delta"].get("content") or "" for c in out["choices"]))
    tail = filt.flush()
    if tail:
        carried.append(tail["choices"][0]["delta"]["content"])
    return "".join(carried), carried


TEXT = "Sure. Contact ada.lovelace@example.com or 415-555-0132 for the details, thanks!"


@pytest.mark.parametrize("size", [1, 3, 7, 16, 200])
def test_a_stream_redacts_entities_split_across_chunks(size: int) -> None:
    filt = StreamFilter(OutputGuard(inspection(output={"pii": "redact", "hold_back_chars": 32})))
    text, carried = relay(filt, chunks(TEXT, size))
    assert text == "Sure. Contact <EMAIL_REDACTED> or <PHONE_REDACTED> for the details, thanks!"
    assert not any("@" in c or "0132" in c for c in carried)
    assert filt.guard.verdict() == {"action": "redact", "entities": {"EMAIL": 1, "PHONE": 1}}


def test_hold_back_is_bounded() -> None:
    filt = StreamFilter(OutputGuard(inspection(output={"pii": "redact", "hold_back_chars": 16})))
    long = "word " * 200
    pending_max = 0
    for chunk in chunks(long, 5)[:-1]:
        filt.chunk(chunk)
        pending_max = max(pending_max, len(filt._pending.get(0, "")))
    assert pending_max <= 16


def test_a_blocked_topic_ends_the_stream_before_it_reaches_the_client() -> None:
    output = {"blocked_terms": ["project nightingale"], "hold_back_chars": 32}
    filt = StreamFilter(OutputGuard(inspection(output=output)))
    sent = []
    with pytest.raises(OutputBlocked) as raised:
        for chunk in chunks("The plan is called Project Nightingale and it ships soon.", 4):
            sent.append(filt.chunk(chunk)["choices"][0]["delta"].get("content") or "")
    assert "Nightingale" not in "".join(sent) and "Night" not in "".join(sent)
    assert raised.value.types == ["BLOCKED_TOPIC"]
    assert filt.guard.verdict()["action"] == "block"


def test_blocked_patterns_are_regexes() -> None:
    guard = OutputGuard(inspection(output={"blocked_patterns": [r"\bPRJ-\d{4}\b"]}))
    assert guard.text("nothing here") == "nothing here"
    with pytest.raises(OutputBlocked):
        guard.text("see PRJ-1234")


def test_reversible_restores_placeholders_split_across_chunks() -> None:
    found = inspection("mail ada@example.com", entities={"EMAIL": "redact"}, reversible=True)
    assert found.forward["messages"][0]["content"] == "mail <EMAIL_1>"
    filt = StreamFilter(OutputGuard(found))
    for size in (1, 2, 5):
        filt = StreamFilter(OutputGuard(found))
        text, carried = relay(filt, chunks("I wrote to <EMAIL_1> as asked.", size))
        assert text == "I wrote to ada@example.com as asked."
        assert not any("<EMAIL" in c and ">" not in c for c in carried)


def test_json_answers_are_restored_and_checked() -> None:
    found = inspection("mail ada@example.com", entities={"EMAIL": "redact"}, reversible=True)
    guard = OutputGuard(found)
    answer: dict[str, Any] = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Done: <EMAIL_1>.",
                    "tool_calls": [
                        {"function": {"name": "send", "arguments": '{"to": "<EMAIL_1>"}'}}
                    ],
                },
            }
        ]
    }
    out = guard.answer(answer)
    message = out["choices"][0]["message"]
    assert message["content"] == "Done: ada@example.com."
    assert message["tool_calls"][0]["function"]["arguments"] == '{"to": "ada@example.com"}'
    assert answer["choices"][0]["message"]["content"] == "Done: <EMAIL_1>."  # not mutated
    assert guard.verdict() == {"action": "allow", "entities": {}}


def test_output_pii_block() -> None:
    guard = OutputGuard(inspection(output={"pii": "block"}))
    with pytest.raises(OutputBlocked) as raised:
        guard.text("her card is 4111 1111 1111 1111")
    assert raised.value.types == ["CREDIT_CARD"]
    assert "4111" not in str(raised.value)
