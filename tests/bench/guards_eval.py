"""Evaluates the inline guard on the labelled set in ``tests/bench/guards_eval/``.

Prints precision and recall per entity type (a found span counts when it overlaps a
labelled value of the same type), injection recall and the false-positive rate on the
prompts labelled benign (at the default threshold), and the inline guard's time per
request (``InlineGuard.inspect`` on a canonical chat body: scan, score, decide, redact)
for a 2 KB prompt, benign and with PII.

    .venv/bin/python -m tests.bench.guards_eval [--iterations 5000] [--misses]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from ingress.guards import InlineGuard
from ingress.guards.injection import score
from ingress.guards.scan import find_entities
from schemas.guards_config import ENTITIES, GuardSettings

DATA = Path(__file__).parent / "guards_eval"


def load() -> list[dict[str, Any]]:
    cases = []
    for path in sorted(DATA.glob("*.jsonl")):
        cases += [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return cases


def _labelled_spans(case: dict[str, Any]) -> list[tuple[str, int, int]]:
    spans = []
    for entity in case["entities"]:
        start = case["text"].find(entity["value"])
        assert start != -1, f"{case['id']}: value not in text"
        spans.append((entity["type"], start, start + len(entity["value"])))
    return spans


def entity_scores(
    cases: list[dict[str, Any]], show_misses: bool
) -> dict[str, tuple[int, int, int]]:
    """type → (true positives, false positives, false negatives)."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for case in cases:
        gold = _labelled_spans(case)
        found = find_entities(case["text"])
        matched: set[int] = set()
        for span in found:
            hit = next(
                (
                    i
                    for i, (t, a, b) in enumerate(gold)
                    if t == span.type and span.start < b and a < span.end and i not in matched
                ),
                None,
            )
            if hit is None:
                fp[span.type] += 1
                if show_misses:
                    print(f"  FP {span.type:<11} {case['id']}: {case['text'][:90]!r}")
            else:
                matched.add(hit)
                tp[span.type] += 1
        for i, (t, _, _) in enumerate(gold):
            if i not in matched:
                fn[t] += 1
                if show_misses:
                    print(f"  FN {t:<11} {case['id']}: {case['text'][:90]!r}")
    return {t: (tp[t], fp[t], fn[t]) for t in ENTITIES}


def injection_scores(
    cases: list[dict[str, Any]], threshold: float, show_misses: bool
) -> tuple[int, int, int, int]:
    """(caught, injections, false alarms, benign prompts)."""
    caught = alarms = positives = negatives = 0
    for case in cases:
        hit = score([case["text"]]).score >= threshold
        if case["injection"]:
            positives += 1
            caught += hit
            if show_misses and not hit:
                print(f"  FN INJECTION  {case['id']}: {case['text'][:90]!r}")
        else:
            negatives += 1
            alarms += hit
            if show_misses and hit:
                print(f"  FP INJECTION  {case['id']}: {case['text'][:90]!r}")
    return caught, positives, alarms, negatives


TYPICAL = (
    "Please review this change. The billing job now builds invoices in batches of 500 "
    "instead of one at a time, which cut the nightly run from 42 to 7 minutes on staging "
    "(2024-05-01). It reads the customers table once, groups line items by account, and "
    "writes the PDFs to the bucket in parallel with 8 workers. Is the retry logic safe if "
    "a worker dies halfway, and should the batch size be configurable? "
)


def prompt_2kb(cases: list[dict[str, Any]], with_pii: bool, dense: bool = True) -> str:
    """2 KB of prose (and, with ``with_pii``, three entities). ``dense``: the set's benign
    look-alikes back to back, full of the injection detector's trigger words (its worst
    case); else an ordinary code-review request."""
    prose = [c["text"] for c in cases if c["group"] == "benign"] if dense else [TYPICAL]
    text = " ".join(prose)
    while len(text) < 2048:
        text += " " + text
    text = text[:2048]
    if with_pii:
        extra = " Mail ada@example.com, card 4111 1111 1111 1111, key AKIAIOSFODNN7EXAMPLE."
        text = text[: 2048 - len(extra)] + extra
    return text


def timing(text: str, iterations: int) -> tuple[float, float]:
    guard = InlineGuard(GuardSettings())
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": text},
        ],
    }
    for _ in range(200):
        guard.inspect("acme", "gpt-4o", body)
    samples = []
    for _ in range(iterations):
        started = time.perf_counter_ns()
        guard.inspect("acme", "gpt-4o", body)
        samples.append((time.perf_counter_ns() - started) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "  n/a"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--misses", action="store_true", help="print every miss and false hit")
    args = parser.parse_args(argv)
    cases = load()
    threshold = GuardSettings().injection.threshold
    print(f"{len(cases)} cases from {DATA}")
    print(f"\n{'entity':<12} {'precision':>9} {'recall':>7} {'tp':>4} {'fp':>4} {'fn':>4}")
    totals = [0, 0, 0]
    for entity, (tp, fp, fn) in entity_scores(cases, args.misses).items():
        totals = [totals[0] + tp, totals[1] + fp, totals[2] + fn]
        print(f"{entity:<12} {_ratio(tp, tp + fp):>9} {_ratio(tp, tp + fn):>7}", end=" ")
        print(f"{tp:>4} {fp:>4} {fn:>4}")
    tp, fp, fn = totals
    print(f"{'all':<12} {_ratio(tp, tp + fp):>9} {_ratio(tp, tp + fn):>7} {tp:>4} {fp:>4} {fn:>4}")
    caught, positives, alarms, negatives = injection_scores(cases, threshold, args.misses)
    print(
        f"\ninjection (threshold {threshold}): recall {_ratio(caught, positives)} "
        f"({caught}/{positives}), false positives {_ratio(alarms, negatives)} "
        f"({alarms}/{negatives} prompts without an injection)"
    )
    for label, with_pii, dense in (
        ("ordinary", False, False),
        ("ordinary + 3 entities", True, False),
        ("trigger-dense look-alikes", False, True),
        ("trigger-dense + 3 entities", True, True),
    ):
        text = prompt_2kb(cases, with_pii, dense)
        p50, p99 = timing(text, args.iterations)
        print(f"inline guard, {len(text)} B prompt, {label}: p50 {p50:.1f} µs, p99 {p99:.1f} µs")


if __name__ == "__main__":
    main()
