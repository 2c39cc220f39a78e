"""Throughput of the stream analysis (Presidio in ``processors/guards``), in events/s.

Runs ``Analysis.verdicts`` (text extraction, Presidio on its one thread, the verdict) on
batches of request events, as the ``guard-analysis`` agent does, for three shapes: 2 KB
of ordinary prose with one e-mail, 2 KB dense with PII (an e-mail, a phone, a card every
~200 characters), and 20 KB of prose (the default cap). Prints the NLP engine in use.

    .venv/bin/python -m tests.bench.guards_stream [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from processors.guards.agent import BATCH_MAX, Analysis
from processors.guards.analyzer import installed_spacy_model
from schemas.events import RequestReceived
from schemas.guards_config import StreamAnalysis

WORDS = [
    "the",
    "quarterly",
    "report",
    "shows",
    "revenue",
    "growth",
    "in",
    "europe",
    "please",
    "summarise",
    "it",
    "and",
    "explain",
    "which",
    "product",
    "lines",
    "drove",
    "the",
    "change",
    "compared",
    "with",
    "last",
    "year",
]
DENSE = "Mail ann@example.com or call 415-555-0132; card 4111 1111 1111 1111. "


def _prose(chars: int, rng: random.Random) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(chars // 4))
    return text[: chars - 30] + " contact ann@example.com"


def _event(n: int, text: str) -> RequestReceived:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    return RequestReceived(
        request_id=f"r{n}", tenant="t", key_id="k", endpoint="/v1/chat/completions",
        model="gpt-4o", body=body,
    )  # fmt: skip


async def _rate(analysis: Analysis, text: str, seconds: float) -> float:
    batch = [_event(i, text) for i in range(BATCH_MAX)]
    await analysis.verdicts(batch[:1])  # builds the engine
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        await analysis.verdicts(batch)
        done += len(batch)
    return done / (time.perf_counter() - started)


async def main(seconds: float) -> None:
    rng = random.Random(7)
    analysis = Analysis(StreamAnalysis())
    shapes = {
        "2 KB prose, one e-mail": _prose(2_000, rng),
        "2 KB dense PII": (DENSE * 40)[:2_000],
        "20 KB prose": _prose(20_000, rng),
    }
    print(f"NLP engine: {installed_spacy_model() or 'none (pattern recognizers only)'}")
    try:
        for name, text in shapes.items():
            print(f"{name:24} {await _rate(analysis, text, seconds):8.0f} events/s")
    finally:
        analysis.pool.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    asyncio.run(main(parser.parse_args().seconds))
