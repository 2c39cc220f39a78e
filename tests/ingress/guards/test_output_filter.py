"""The answer side: redaction and blocking in JSON and streams, bounded hold-back,
placeholders restored (reversible) even when split across chunks."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ingress.anthropic_translate import MessageEvents
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


def call_chunks(arguments: str, size: int, position: int = 0) -> list[dict[str, Any]]:
    """One streamed tool call as providers send it: id, type and name first, then fragments."""
    opening = {
        "index": position,
        "id": f"call_{position}",
        "type": "function",
        "function": {"name": "send", "arguments": ""},
    }
    out = [{"choices": [{"index": 0, "delta": {"tool_calls": [opening]}, "finish_reason": None}]}]
    out += [
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": position, "function": {"arguments": arguments[i : i + size]}}
                        ]
                    },
                    "finish_reason": None,
                }
            ]
        }
        for i in range(0, len(arguments), size)
    ]
    return out


FINISH = {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}


def relay_calls(
    filt: StreamFilter, parts: list[dict[str, Any]]
) -> tuple[dict[int, str], list[dict[str, Any]]]:
    """Arguments per call position as a client would join them, and every delta sent."""
    joined: dict[int, str] = {}
    deltas = []
    outs = [filt.chunk(c) for c in parts]
    tail = filt.flush()
    for out in [*outs, *([tail] if tail else [])]:
        for choice in out["choices"]:
            deltas.append(choice["delta"])
            for call in choice["delta"].get("tool_calls") or ():
                piece = call["function"].get("arguments") or ""
                joined[call["index"]] = joined.get(call["index"], "") + piece
    return joined, deltas


@pytest.mark.parametrize("size", [1, 3, 8, 200])
@pytest.mark.parametrize("finish", [True, False])
def test_streamed_arguments_redact_an_email_split_across_fragments(size: int, finish: bool) -> None:
    filt = StreamFilter(OutputGuard(inspection(output={"pii": "redact", "hold_back_chars": 32})))
    arguments = '{"to": "ada.lovelace@example.com", "note": "line\\nbob@example.org"}'
    parts = call_chunks(arguments, size) + ([FINISH] if finish else [])
    joined, deltas = relay_calls(filt, parts)
    assert orjson.loads(joined[0]) == {"to": "<EMAIL_REDACTED>", "note": "line\n<EMAIL_REDACTED>"}
    assert not any("@" in orjson.dumps(d).decode() for d in deltas)
    first = deltas[0]["tool_calls"][0]
    assert first == {
        "index": 0,
        "id": "call_0",
        "type": "function",
        "function": {"name": "send", "arguments": first["function"]["arguments"]},
    }
    if finish:  # what was held went out with the finish, never after it
        assert deltas[-1]["tool_calls"] and parts[-1]["choices"][0]["finish_reason"]
    assert filt.guard.verdict() == {"action": "redact", "entities": {"EMAIL": 2}}


def test_streamed_arguments_never_split_a_json_escape() -> None:
    guard = OutputGuard(inspection(output={"pii": "redact", "hold_back_chars": 24}))
    for escape in ("\\n", "\\t", "\\u00e9", "\\\\"):
        arguments = '{"a": "' + "x" * 20 + escape + 'ada@example.com and more text here"}'
        for size in range(1, 12):
            joined, _ = relay_calls(StreamFilter(guard), [*call_chunks(arguments, size), FINISH])
            value = orjson.loads(joined[0])["a"]
            assert "@" not in value and "<EMAIL_REDACTED>" in value, (escape, size, joined)


def test_streamed_arguments_block_per_policy() -> None:
    filt = StreamFilter(OutputGuard(inspection(output={"pii": "block", "hold_back_chars": 32})))
    sent = []
    with pytest.raises(OutputBlocked) as raised:
        for chunk in call_chunks('{"to": "ada.lovelace@example.com"}', 4):
            sent.append(orjson.dumps(filt.chunk(chunk)).decode())
    assert raised.value.types == ["EMAIL"] and not any("lovelace" in s for s in sent)


def test_a_blocked_term_in_streamed_arguments_ends_the_stream() -> None:
    output = {"blocked_terms": ["project nightingale"], "hold_back_chars": 32}
    filt = StreamFilter(OutputGuard(inspection(output=output)))
    sent = []
    with pytest.raises(OutputBlocked) as raised:
        for chunk in call_chunks('{"q": "status of Project Nightingale please"}', 3):
            sent.append(orjson.dumps(filt.chunk(chunk)).decode())
    assert "Night" not in "".join(sent) and raised.value.types == ["BLOCKED_TOPIC"]


def test_reversible_restores_placeholders_split_across_argument_fragments() -> None:
    found = inspection("mail ada@example.com", entities={"EMAIL": "redact"}, reversible=True)
    for size in (1, 2, 5, 8):
        filt = StreamFilter(OutputGuard(found))
        joined, deltas = relay_calls(filt, [*call_chunks('{"to": "<EMAIL_1>"}', size), FINISH])
        assert orjson.loads(joined[0]) == {"to": "ada@example.com"}
        for delta in deltas:
            for call in delta.get("tool_calls") or ():
                piece = call["function"]["arguments"]
                assert "<EMAIL" not in piece or ">" in piece


def test_restored_values_are_json_escaped_in_arguments() -> None:
    pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQ"x\n-----END PRIVATE KEY-----'
    found = inspection(f"key {pem}", entities={"SECRET": "redact"}, reversible=True)
    assert "<SECRET_1>" in found.forward["messages"][0]["content"]
    guard = OutputGuard(found)
    assert orjson.loads(guard.text('{"k": "<SECRET_1>"}', in_json=True)) == {"k": pem}
    joined, _ = relay_calls(StreamFilter(guard), [*call_chunks('{"k": "<SECRET_1>"}', 3), FINISH])
    assert orjson.loads(joined[0]) == {"k": pem}
    assert guard.text("<SECRET_1>") == pem  # content: as it was


def test_a_call_releases_what_it_held_when_the_next_call_starts() -> None:
    filt = StreamFilter(OutputGuard(inspection(output={"pii": "redact", "hold_back_chars": 32})))
    first, second = '{"to": "ada@example.com"}', '{"to": "bob@example.org"}'
    parts = [*call_chunks(first, 5, 0), *call_chunks(second, 5, 1), FINISH]
    joined, deltas = relay_calls(filt, parts)
    assert joined == {0: '{"to": "<EMAIL_REDACTED>"}', 1: '{"to": "<EMAIL_REDACTED>"}'}
    order = [c["index"] for d in deltas for c in d.get("tool_calls") or ()]
    assert order == sorted(order)  # no fragment of call 0 after call 1 started
    # the Anthropic door writes fragments into the block that is open: each call's own
    events = MessageEvents("msg_1", "m")
    filt = StreamFilter(OutputGuard(inspection(output={"pii": "redact", "hold_back_chars": 32})))
    frames = [e for p in parts for e in events.feed(filt.chunk(p))] + events.finish()
    partial: dict[int, str] = {}
    for frame in frames:
        data = orjson.loads(frame.split(b"data: ", 1)[1])
        if data.get("delta", {}).get("type") == "input_json_delta":
            partial[data["index"]] = partial.get(data["index"], "") + data["delta"]["partial_json"]
    assert partial == {0: '{"to": "<EMAIL_REDACTED>"}', 1: '{"to": "<EMAIL_REDACTED>"}'}


def test_text_held_before_a_tool_call_goes_out_before_it() -> None:
    filt = StreamFilter(OutputGuard(inspection(output={"pii": "redact", "hold_back_chars": 32})))
    parts = [
        *chunks("Writing to ada@example.com now.", 4)[:-1],
        *call_chunks('{"a": 1}', 3),
        FINISH,
    ]
    outs = [filt.chunk(p) for p in parts]
    deltas = [c["delta"] for o in outs for c in o["choices"]]
    first_call = next(i for i, d in enumerate(deltas) if d.get("tool_calls"))
    text = "".join(d.get("content") or "" for d in deltas[: first_call + 1])
    assert text == "Writing to <EMAIL_REDACTED> now."
    assert not any(d.get("content") for d in deltas[first_call + 1 :])


def test_no_tool_calls_leaves_chunks_as_they_were() -> None:
    filt = StreamFilter(OutputGuard(inspection(output={"pii": "redact", "hold_back_chars": 8})))
    parts = chunks("Nothing to hide here, nothing at all.", 5)
    outs = [filt.chunk(c) for c in parts]
    for part, out in zip(parts, outs, strict=True):  # same shape: only content may move
        assert out["choices"][0].keys() == part["choices"][0].keys()
        assert out["choices"][0]["delta"].keys() == part["choices"][0]["delta"].keys() or (
            part["choices"][0]["finish_reason"] and "tool_calls" not in out["choices"][0]["delta"]
        )
    assert "".join(o["choices"][0]["delta"].get("content") or "" for o in outs) == (
        "Nothing to hide here, nothing at all."
    )
    assert not filt._calls and not filt._current and filt.flush() is None
    usage = {"choices": [], "usage": {"prompt_tokens": 1}}
    assert filt.chunk(usage) is usage


def test_json_tool_call_arguments_are_checked() -> None:
    redacting = OutputGuard(inspection(output={"pii": "redact", "blocked_terms": ["nightingale"]}))
    answer: dict[str, Any] = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "send", "arguments": '{"to": "x\\nada@ex.com"}'},
                        }
                    ],
                    "function_call": {"name": "send", "arguments": '{"cc": "bob@ex.org"}'},
                },
            }
        ]
    }
    message = redacting.answer(answer)["choices"][0]["message"]
    call = message["tool_calls"][0]
    assert call["id"] == "c" and call["function"]["name"] == "send"
    assert orjson.loads(call["function"]["arguments"]) == {"to": "x\n<EMAIL_REDACTED>"}
    assert orjson.loads(message["function_call"]["arguments"]) == {"cc": "<EMAIL_REDACTED>"}
    assert redacting.verdict() == {"action": "redact", "entities": {"EMAIL": 2}}
    blocking = OutputGuard(inspection(output={"pii": "block"}))
    with pytest.raises(OutputBlocked):
        blocking.answer(answer)
    topics = OutputGuard(inspection(output={"blocked_terms": ["nightingale"]}))
    answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = (
        '{"q": "Nightingale"}'
    )
    with pytest.raises(OutputBlocked) as raised:
        topics.answer(answer)
    assert raised.value.types == ["BLOCKED_TOPIC"]
