"""Recorded requests from ``tollgate.requests``, by time range, while Kafka still holds them.

Start offsets come from ``offsets_for_times`` on every partition; each partition is read to
its end offset as of the start (responses may follow their requests past the window's
end). Requests and responses pair up by request id (a tenant's events share a partition).
Calls that were themselves tagged (replays, live splits) are never selected.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from infra.replay.records import Recorded, selected
from infra.replay.spec import Selection
from schemas.topics import REQUESTS


class RetentionPassed(RuntimeError):
    """Kafka no longer holds the start of the range: read the ClickHouse audit log."""


async def load(bootstrap_servers: str, selection: Selection, *, strict: bool) -> list[Recorded]:
    """``strict``: raise ``RetentionPassed`` when a partition has dropped records from the
    range (the caller falls back to ClickHouse)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    await asyncio.sleep(0)  # let the consumer's own tasks start, so stop() can end them
    try:
        # a consumer without subscriptions keeps no topic metadata: ask the cluster
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(REQUESTS.name) or set()
        tps = [TopicPartition(REQUESTS.name, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        firsts = await consumer.beginning_offsets(tps)
        starts = await consumer.offsets_for_times(dict.fromkeys(tps, selection.since_ms))
        if strict:
            await _check_retention(consumer, tps, firsts, ends, selection.since_ms)
        for tp in tps:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])
        return _pair(await _read(consumer, tps, ends), selection)
    finally:
        await consumer.stop()


async def _check_retention(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    firsts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
    since_ms: int,
) -> None:
    for tp in tps:
        if firsts[tp] == 0:
            continue  # nothing deleted yet
        if firsts[tp] >= ends[tp]:
            # records were written and all are gone: their times are unknown, so any of
            # them may have been in the range
            raise RetentionPassed(
                f"{tp.topic}[{tp.partition}] holds none of its {firsts[tp]} records any "
                "more: Kafka's retention has passed"
            )
        consumer.seek(tp, firsts[tp])
        batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
        records = batch.get(tp) or []
        if records and records[0].timestamp > since_ms:
            raise RetentionPassed(
                f"{tp.topic}[{tp.partition}] starts at {records[0].timestamp} ms, after the "
                "range's start: Kafka's retention has passed"
            )


async def _read(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], ends: dict[TopicPartition, int]
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    left = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
    while left:
        batch = await consumer.getmany(*left, timeout_ms=1000)
        for tp, records in batch.items():
            for record in records:
                if record.offset < ends[tp] and record.value is not None:
                    try:
                        data = orjson.loads(record.value)
                    except orjson.JSONDecodeError:
                        continue  # not an event; the sink dead-letters those
                    if isinstance(data, dict):
                        events.append(data)
        left = {tp for tp in left if await consumer.position(tp) < ends[tp]}
    return events


def _pair(events: list[dict[str, Any]], selection: Selection) -> list[Recorded]:
    requests: dict[str, Recorded] = {}
    answers: dict[str, dict[str, Any]] = {}
    for data in events:
        kind, rid = data.get("type"), str(data.get("request_id") or "")
        if data.get("experiment"):
            continue
        if kind == "request.received" and rid not in requests:
            requests[rid] = Recorded(
                request_id=rid,
                ts=int(data.get("ts") or 0),
                tenant=str(data.get("tenant") or ""),
                key_id=str(data.get("key_id") or ""),
                model=str(data.get("model") or ""),
                endpoint=str(data.get("endpoint") or ""),
                deployment=str(data.get("deployment") or ""),
                body=data.get("body") or {},
                body_kept=str(data.get("body_kept") or "full"),
            )
        elif kind in ("response.completed", "response.failed"):
            answers.setdefault(rid, data)
    chosen = []
    for rid, record in requests.items():
        if not selected(record, selection):
            continue
        answer = answers.get(rid)
        if answer is not None:
            record.status = int(answer.get("status") or 0)
            if answer.get("type") == "response.completed":
                record.outputs_kept = str(answer.get("outputs_kept") or "full")
                if record.outputs_kept == "full":
                    record.outputs = [str(o) for o in answer.get("outputs") or []]
                usage = answer.get("usage") or {}
                record.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                record.completion_tokens = int(usage.get("completion_tokens") or 0)
        chosen.append(record)
    return sorted(chosen, key=lambda r: (r.ts, r.request_id))
