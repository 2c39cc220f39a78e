"""What the stream analysis reads of an event, and the verdict it makes of Presidio's findings."""

from __future__ import annotations

import asyncio

from processors.guards.agent import Analysis
from processors.guards.verdicts import text_of, verdict, verdict_id
from schemas.events import RequestReceived, ResponseCompleted
from schemas.guards_config import StreamAnalysis


def _request(body: dict[str, object], kept: str = "full", **kw: object) -> RequestReceived:
    return RequestReceived(
        request_id="r1",
        tenant="acme",
        key_id="k1",
        endpoint="/v1/chat/completions",
        model="gpt-4o",
        body=body,
        body_kept=kept,
        **kw,  # type: ignore[arg-type]
    )


def _response(outputs: list[str], kept: str = "full") -> ResponseCompleted:
    return ResponseCompleted(
        request_id="r1",
        tenant="acme",
        key_id="k1",
        provider="openai",
        model="gpt-4o",
        status=200,
        latency_ms=5,
        outputs=outputs,
        outputs_kept=kept,
    )


def test_text_is_what_the_messages_say_never_images_or_roles() -> None:
    body: dict[str, object] = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "mail ann@example.com"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "tool_calls": [{"function": {"name": "f", "arguments": '{"q": "x"}'}}],
            },
        ],
    }
    text = text_of(_request(body), 20_000)
    assert text is not None and not text.truncated
    assert text.text == 'be brief\nmail ann@example.com\n{"q": "x"}'
    embeddings = text_of(_request({"input": ["one", "two"]}), 20_000)
    assert embeddings is not None and embeddings.text == "one\ntwo"


def test_long_text_is_cut_and_a_body_not_kept_is_not_read() -> None:
    long = text_of(_request({"messages": [{"role": "user", "content": "x" * 30_000}]}), 20_000)
    assert long is not None and long.truncated and len(long.text) == 20_000
    assert text_of(_request({}, kept="none"), 20_000) is None
    assert text_of(_response(["secret"], kept="none"), 20_000) is None


def test_verdict_is_deterministic_and_carries_the_inline_one() -> None:
    guard = {"action": "block", "entities": {"EMAIL": 1}, "injection_score": 0.93}
    request = _request({"messages": []}, guard=guard)
    one = verdict(request, None, [])
    two = verdict(request, None, [])
    assert one.id == two.id == verdict_id("r1", "request") != verdict_id("r1", "response")
    assert one.ts == request.ts and one.source == "request"
    assert (one.action, one.inline_entities, one.injection_score) == ("block", {"EMAIL": 1}, 0.93)
    assert one.analyzed_chars == 0


def test_presidio_findings_per_type_with_the_highest_score() -> None:
    analysis = Analysis(StreamAnalysis())
    try:
        prompt = (
            "Reach ann@example.com or bob@example.org; card 4111 1111 1111 1111; "
            "IBAN GB82 WEST 1234 5698 7654 32. Nothing else here."
        )
        request = _request({"messages": [{"role": "user", "content": prompt}]})
        response = _response(["Your SSN is on file. The weather is nice."])
        found = asyncio.run(analysis.verdicts([request, response]))
    finally:
        analysis.pool.shutdown()
    by_type = {e["type"]: e for e in found[0].entities}
    assert by_type["EMAIL"]["count"] == 2 and by_type["EMAIL"]["score"] == 1.0
    assert by_type["CREDIT_CARD"]["count"] == 1 and "IBAN" in by_type
    assert found[0].analyzed_chars == len(prompt)
    assert found[1].source == "response" and found[1].entities == []
