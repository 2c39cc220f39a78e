"""A replay run: skip what cannot be replayed (and say why), send the rest once each.

Per (variant, source request), in order: the journal's ``sent`` line (fsynced), the call
through the gateway, the comparison with the baseline (and the judge's verdict), the
``replay.result`` event on ``tollgate.experiments``, the journal's ``done`` line. Calls
run ``concurrency`` at a time, started at most ``rps`` per second; ``stop`` (Ctrl-C) or
``max_requests`` ends the run after the calls in flight finish.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiokafka import AIOKafkaProducer

from infra.replay import judge
from infra.replay.compare import Comparison, compare
from infra.replay.journal import Journal
from infra.replay.records import Recorded, skip_reason
from infra.replay.sender import RateLimit, Sender, replay_request_id
from infra.replay.spec import ExperimentSpec, Variant
from infra.replay.variants import body_for
from schemas.events import ReplayResult
from schemas.topics import EXPERIMENTS

Publish = Callable[[ReplayResult], Awaitable[None]]
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class RunOptions:
    gateway_url: str
    key: str
    rps: float | None = None
    concurrency: int = 4
    max_requests: int | None = None
    timeout_s: float = 300.0


@dataclass(slots=True)
class Outcome:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    stopped: bool = False


def result_id(request_id: str) -> str:
    """Deterministic: a result published twice is one row."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tollgate:replay-result:{request_id}"))


def pending(
    spec: ExperimentSpec, journal: Journal, records: list[Recorded]
) -> tuple[list[tuple[Variant, Recorded]], list[tuple[Variant, Recorded, str]]]:
    """What is left to send, and what is to be reported skipped (neither done before)."""
    todo, skip = [], []
    for record in records:
        reason = skip_reason(record)
        for variant in spec.variants:
            if journal.handled(variant.name, record.request_id):
                continue
            if reason:
                skip.append((variant, record, reason))
            else:
                todo.append((variant, record))
    return todo, skip


class Replay:
    def __init__(
        self, spec: ExperimentSpec, journal: Journal, options: RunOptions, publish: Publish
    ) -> None:
        self.spec = spec
        self.journal = journal
        self.options = options
        self.publish = publish
        self.stop = asyncio.Event()

    async def run(self, records: list[Recorded], progress: Progress | None = None) -> Outcome:
        outcome = Outcome()
        todo, skip = pending(self.spec, self.journal, records)
        for variant, record, reason in skip:
            await self.publish(self._result(variant, record, skipped=reason))
            self.journal.mark_skipped(variant.name, record.request_id, reason)
            outcome.skipped += 1
        queue: asyncio.Queue[tuple[Variant, Recorded]] = asyncio.Queue()
        for item in todo:
            queue.put_nowait(item)
        limit = RateLimit(self.options.rps)
        budget = self.options.max_requests
        timeout = aiohttp.ClientTimeout(total=self.options.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            sender = Sender(session, self.options.gateway_url, self.options.key)

            async def worker() -> None:
                nonlocal budget
                while not queue.empty() and not self.stop.is_set():
                    if budget is not None:
                        if budget <= 0:
                            outcome.stopped = True
                            return
                        budget -= 1
                    variant, record = queue.get_nowait()
                    await limit.wait()
                    ok = await self._one(sender, variant, record)
                    outcome.sent += 1
                    outcome.failed += 0 if ok else 1
                    if progress is not None:
                        progress(1)

            await asyncio.gather(*(worker() for _ in range(max(self.options.concurrency, 1))))
        outcome.stopped = outcome.stopped or (self.stop.is_set() and not queue.empty())
        return outcome

    async def _one(self, sender: Sender, variant: Variant, record: Recorded) -> bool:
        source = record.request_id
        rid = replay_request_id(self.spec.name, variant.name, source)
        body = body_for(variant, record.body, record.model)
        self.journal.mark_sent(variant.name, source)  # before it leaves: never twice
        answer = await sender.send(
            body,
            request_id=rid,
            experiment=self.spec.name,
            variant=variant.name,
            headers=variant.headers,
        )
        compared = Comparison(bool(record.outputs))
        verdict = ""
        if answer.status == 200:
            compared = compare(body, record.outputs, answer.outputs)
            if self.spec.judge is not None and record.outputs:
                verdict = await judge.verdict(
                    sender,
                    self.spec.judge.model,
                    experiment=self.spec.name,
                    variant=variant.name,
                    source=source,
                    request=body,
                    baseline=record.outputs[0],
                    candidate=answer.outputs[0] if answer.outputs else "",
                )
        await self.publish(
            self._result(
                variant,
                record,
                model=str(body.get("model") or ""),
                status=answer.status,
                compared=compared,
                verdict=verdict,
            )
        )
        self.journal.mark_done(variant.name, source, answer.status)
        return answer.status == 200

    def _result(
        self,
        variant: Variant,
        record: Recorded,
        *,
        skipped: str = "",
        model: str = "",
        status: int = 0,
        compared: Comparison | None = None,
        verdict: str = "",
    ) -> ReplayResult:
        rid = replay_request_id(self.spec.name, variant.name, record.request_id)
        c = compared or Comparison(bool(record.outputs))
        return ReplayResult(
            id=result_id(rid),
            request_id=rid,
            tenant=record.tenant,
            experiment=self.spec.name,
            variant=variant.name,
            source_request_id=record.request_id,
            model=model or variant.model or record.model,
            status=status,
            skipped=skipped,
            baseline=c.baseline,
            exact_match=c.exact_match,
            similarity=c.similarity,
            structured=c.structured,
            json_valid=c.json_valid,
            judge=verdict,
        )


class KafkaResults:
    """Publishes results to ``tollgate.experiments`` and waits for the broker's ack."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")

    async def __aenter__(self) -> KafkaResults:
        await self.producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.producer.stop()

    async def __call__(self, result: ReplayResult) -> None:
        await self.producer.send_and_wait(
            EXPERIMENTS.name, result.encode(), key=result.experiment.encode()
        )
