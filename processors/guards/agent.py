"""The guard agents: Presidio on the request log, and escalation per key.

``guard-analysis`` reads ``tollgate.requests`` (its own consumer of it, beside metering)
and sends one ``guard.verdict`` per ``request.received`` and ``response.completed`` to
``tollgate.verdicts``. Presidio is slow (pure-Python recognizers, ~500 prose prompts of
2 KB a second here, ~70 when they are dense with PII), so it runs on one worker thread,
a batch of at most ``BATCH_MAX`` events at a time: the event loop (metering, heartbeats)
keeps running, and at most one batch is being analysed. Each event's text is cut at
``guards.analysis.max_chars``; a body the policy did not keep (``none``) is not read, but
its verdict still carries the inline guard's (the injection score drives escalation).

``guard-escalation`` (with ``guards.escalation`` set) reads the verdicts, counts attempts
and leaks per key in the ``guard-keys`` table (``processors/guards/escalation.py``), and
sends ``key.blocked`` to ``tollgate.admission`` (keyed ``guard:<key_id>``) and
``guard.key_blocked`` to ``tollgate.alerts``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
from faust.types import Message
from presidio_analyzer import AnalyzerEngine

from processors.dead_letter import dead_lettering_topic
from processors.guards.analyzer import build_analyzer
from processors.guards.escalation import Escalator
from processors.guards.verdicts import Text, summarise, text_of, verdict
from schemas.codec import EVENT_CODEC
from schemas.events import (
    AlertRaised,
    GuardVerdict,
    KeyBlocked,
    RequestReceived,
    ResponseCompleted,
)
from schemas.guards_config import Escalation, StreamAnalysis
from schemas.topics import ADMISSION, ALERTS, REQUESTS, VERDICTS

log = logging.getLogger("tollgate.processors.guards")
BATCH_MAX = 64
BATCH_WAIT_S = 0.05


class SkippingTopic(faust.Topic):
    """A second reader of the request log: metering dead-letters an undecodable record,
    this one only skips it (one dead letter per record, and no crash)."""

    async def on_value_decode_error(self, exc: Exception, message: Message) -> None:
        log.warning("skipping %s[%s]@%s: %s", message.topic, message.partition, message.offset, exc)


class Analysis:
    """Presidio on one thread, built there on first use (it takes ~2 s)."""

    def __init__(self, settings: StreamAnalysis) -> None:
        self.settings = settings
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="presidio")
        self._engine: AnalyzerEngine | None = None
        self.analyzed = 0
        self.busy_s = 0.0

    def _entities(self, texts: list[Text | None]) -> list[list[dict[str, Any]]]:
        if self._engine is None:
            self._engine = build_analyzer()
        started = time.perf_counter()
        found: list[list[dict[str, Any]]] = []
        for text in texts:
            if text is None or not text.text:
                found.append([])
                continue
            results = self._engine.analyze(
                text=text.text, language="en", score_threshold=self.settings.min_score
            )
            found.append(summarise(results, self.settings.min_score))
        self.analyzed += len(texts)
        self.busy_s += time.perf_counter() - started
        return found

    async def verdicts(
        self, events: Sequence[RequestReceived | ResponseCompleted]
    ) -> list[GuardVerdict]:
        texts = [text_of(e, self.settings.max_chars) for e in events]
        loop = asyncio.get_running_loop()
        entities = await loop.run_in_executor(self.pool, self._entities, texts)
        return [verdict(e, t, found) for e, t, found in zip(events, texts, entities, strict=True)]


def register_analysis(app: faust.App, settings: StreamAnalysis) -> None:
    """Presidio over the request log: in a worker of its own (``processors.app``), since
    its CPU would otherwise delay the metering agent and so every admission decision."""
    verdicts = app.topic(
        VERDICTS.name, partitions=VERDICTS.partitions, value_serializer=EVENT_CODEC
    )
    requests = SkippingTopic(
        app, topics=[REQUESTS.name], partitions=REQUESTS.partitions, value_serializer=EVENT_CODEC
    )
    analysis = Analysis(settings)

    @app.agent(requests, name="guard-analysis")
    async def analysis_agent(stream: faust.StreamT[Any]) -> None:
        batches = stream.take(BATCH_MAX, within=BATCH_WAIT_S)  # type: ignore[attr-defined]
        async for values in batches:
            events = [v for v in values if isinstance(v, RequestReceived | ResponseCompleted)]
            if not events:
                continue
            for found in await analysis.verdicts(events):
                await verdicts.send(key=found.tenant.encode(), value=found)
            if analysis.analyzed and analysis.analyzed % 10_000 < len(events):
                rate = analysis.analyzed / max(analysis.busy_s, 1e-9)
                log.info("presidio: %d events analysed, %.0f/s", analysis.analyzed, rate)


def register_escalation(app: faust.App, policy: Escalation) -> None:
    source = dead_lettering_topic(
        app, VERDICTS.name, partitions=VERDICTS.partitions, value_serializer=EVENT_CODEC
    )
    admission = app.topic(ADMISSION.name, partitions=1, value_serializer=EVENT_CODEC)
    alerts = app.topic(ALERTS.name, partitions=1, value_serializer=EVENT_CODEC)
    escalator = Escalator(app.Table("guard-keys", partitions=VERDICTS.partitions), policy)

    @app.agent(source, name="guard-escalation")
    async def escalation_agent(stream: faust.StreamT[Any]) -> None:
        async for value in stream:
            if not isinstance(value, GuardVerdict):
                continue
            for event in escalator.apply(value):
                if isinstance(event, KeyBlocked):
                    log.warning("key %s: %s (%s)", event.key_id, event.action, event.reason)
                    await admission.send(key=f"guard:{event.key_id}".encode(), value=event)
                elif isinstance(event, AlertRaised):
                    await alerts.send(key=event.subject.encode(), value=event)
