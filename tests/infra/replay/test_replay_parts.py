"""The replay's parts in process: journal, selection, skips, bodies, comparison, pricing."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from infra.replay.compare import compare, similarity
from infra.replay.journal import Journal, SpecMismatch
from infra.replay.pricing import estimate
from infra.replay.records import Recorded, in_sample, selected, skip_reason
from infra.replay.runner import pending, result_id
from infra.replay.sender import replay_request_id
from infra.replay.spec import ExperimentSpec, Selection, Variant
from infra.replay.variants import body_for
from schemas.events import ReplayResult
from schemas.pricing import build_price_book
from sinks.clickhouse.rows import COLUMNS, REPLAY_RESULTS, RowBuilder

SPEC = ExperimentSpec(
    name="exp1",
    variants=(Variant(name="a", model="gpt-4o-mini"), Variant(name="b", model="gpt-4.1")),
    selection=Selection(since_ms=0, until_ms=10_000),
)
BODY = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi there"}]}


def record(rid: str, **kw: object) -> Recorded:
    fields: dict[str, object] = {
        "request_id": rid,
        "ts": 1000,
        "tenant": "acme",
        "key_id": "k1",
        "model": "gpt-4o",
        "endpoint": "/v1/chat/completions",
        "body": BODY,
        "outputs": ["Hello there."],
        **kw,
    }
    return Recorded(**fields)  # type: ignore[arg-type]


def test_the_journal_resumes_without_repeats_and_survives_a_torn_tail(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path, SPEC)
    journal.mark_sent("a", "r1")
    journal.mark_done("a", "r1", 200)
    journal.mark_sent("a", "r2")  # in flight when the run stopped
    journal.mark_skipped("b", "r3", "body not kept: policy none")
    with journal.path.open("ab") as out:
        out.write(b'{"e": "sent", "vari')  # a crash mid-write
    again = Journal.open(tmp_path, SPEC)
    records = [record("r1"), record("r2"), record("r3", body_kept="none", body={})]
    todo, skip = pending(SPEC, again, records)
    assert sorted((v.name, r.request_id) for v, r in todo) == [("b", "r1"), ("b", "r2")]
    assert [(v.name, r.request_id) for v, r, _ in skip] == [("a", "r3")]
    assert again.in_doubt() == {("a", "r2")}
    assert again.summary()[0] == {
        "variant": "a",
        "sent": 2,
        "done": 1,
        "in_doubt": 1,
        "skipped": {},
    }
    other = SPEC.model_copy(update={"variants": (Variant(name="a"),)})
    with pytest.raises(SpecMismatch):
        Journal.open(tmp_path, other)


def test_selection_filters_and_a_stable_sample() -> None:
    sel = Selection(since_ms=500, until_ms=2000, tenant="acme", model="gpt-4o")
    assert selected(record("r"), sel)
    assert not selected(record("r", ts=2000), sel)
    assert not selected(record("r", tenant="other"), sel)
    ids = [f"req-{i}" for i in range(4000)]
    picked = [i for i in ids if in_sample(i, 0.25)]
    assert abs(len(picked) / 4000 - 0.25) < 0.03
    assert picked == [i for i in ids if in_sample(i, 0.25)]


def test_skips_say_why() -> None:
    assert skip_reason(record("r")) == ""
    assert skip_reason(record("r", body_kept="redacted")) == "body not kept: policy redacted"
    assert skip_reason(record("r", body_kept="none", body={})) == "body not kept: policy none"
    assert "body_ttl_days" in skip_reason(record("r", missing_body=True, body={}))
    assert "only chat" in skip_reason(record("r", endpoint="/v1/embeddings"))


def test_a_variant_body_sets_model_params_system_and_template() -> None:
    variant = Variant(
        name="v",
        model="gpt-4.1",
        params={"temperature": 0},
        system="Be brief.",
        template="Q: {prompt}",
    )
    body = body_for(variant, BODY, "gpt-4o")
    assert body["model"] == "gpt-4.1" and body["temperature"] == 0 and "stream" not in body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q: hi there"},
    ]
    assert BODY["stream"] is True  # the recorded body is untouched
    assert body_for(Variant(name="same"), BODY, "gpt-4o")["model"] == "gpt-4o"


def test_comparison_exact_similarity_and_json() -> None:
    same = compare(BODY, ["Hello there."], ["Hello there. "])
    assert same.baseline and same.exact_match and same.similarity == 1.0
    other = compare(BODY, ["Hello there."], ["Goodbye."])
    assert not other.exact_match and 0 < other.similarity < 0.6
    assert similarity("abcd", "abcd") == 1.0 and similarity("abc", "xyz") == 0.0
    structured = {**BODY, "response_format": {"type": "json_object"}}
    assert compare(structured, None, ['{"a": 1}']).json_valid
    bad = compare(structured, None, ["not json"])
    assert bad.structured and not bad.json_valid and not bad.baseline


def test_the_dry_run_prices_each_variant_at_its_model() -> None:
    records = [record("r1", prompt_tokens=1000, completion_tokens=500)]
    a, b = estimate(SPEC, records, build_price_book([]), 256)
    assert (a.requests, a.prompt_tokens, a.completion_tokens) == (1, 1000, 500)
    assert a.usd == Decimal("0.00045")  # gpt-4o-mini: 1000 x 0.15 + 500 x 0.60 per 1M
    assert b.usd == Decimal("0.006")  # gpt-4.1: 1000 x 2 + 500 x 8 per 1M


def test_request_ids_fit_the_gateway_and_results_are_rows() -> None:
    assert replay_request_id("e", "v", "abc-1") == "replay:e:v:abc-1"
    long = replay_request_id("e" * 64, "v" * 64, "s" * 40)
    assert long.startswith("replay:") and len(long) <= 128
    assert replay_request_id("e", "v", "a b") != replay_request_id("e", "v", "a_b")
    rid = replay_request_id("e", "v", "s1")
    event = ReplayResult(
        id=result_id(rid),
        request_id=rid,
        tenant="acme",
        experiment="e",
        variant="v",
        source_request_id="s1",
        status=200,
        baseline=True,
        similarity=0.5,
    )
    [(table, row)] = RowBuilder(30, []).rows(event, event.encode())
    assert table == REPLAY_RESULTS and len(row) == len(COLUMNS[REPLAY_RESULTS])
    assert result_id(rid) == event.id  # the same result twice is one row
