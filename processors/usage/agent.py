"""The usage agent: joins each request with its response and emits one usage event.

Both events travel on ``tollgate.requests`` keyed by tenant, so they share a partition and
the join state (a changelog-backed table) lives on that partition too. Either may arrive
first (the ingress retries publishes while Kafka is away), so the table holds whichever
half came first. ``usage-done`` makes the agent idempotent on request id: a redelivered or
replayed event never emits usage twice.
"""

from __future__ import annotations

from typing import Any

import faust

from processors.dead_letter import dead_lettering_topic
from processors.usage.accounting import prompt_tokens, record_usage
from schemas.codec import EVENT_CODEC
from schemas.events import Event, RequestReceived, ResponseCompleted, ResponseFailed
from schemas.pricing import PriceBook
from schemas.topics import REQUESTS, USAGE


class UsageJoin:
    """Join state per request id; kept apart from Faust wiring so the rule reads plainly."""

    def __init__(self, pending: Any, done: Any, prices: PriceBook) -> None:
        self.pending = pending
        self.done = done
        self.prices = prices

    def on_event(self, event: Event) -> ResponseCompleted | None:
        """Returns the completed response to bill now, with its prompt count stored."""
        rid = event.request_id
        if rid in self.done:
            return None
        if isinstance(event, RequestReceived):
            waiting = self.pending.get(rid)
            if waiting and waiting.get("response"):
                self.pending[rid] = {"prompt_tokens": prompt_tokens(event), **waiting}
                return ResponseCompleted(**waiting["response"])
            self.pending[rid] = {"prompt_tokens": prompt_tokens(event)}
        elif isinstance(event, ResponseCompleted):
            waiting = self.pending.get(rid) or {}
            if event.usage or "prompt_tokens" in waiting:
                return event
            fields = event.to_dict()
            fields.pop("type")
            self.pending[rid] = {"response": fields}
        elif isinstance(event, ResponseFailed):
            self.pending.pop(rid, None)
        return None

    def bill(self, response: ResponseCompleted) -> Any:
        waiting = self.pending.get(response.request_id) or {}
        usage = record_usage(response, waiting.get("prompt_tokens"), self.prices)
        self.done[response.request_id] = response.ts
        self.pending.pop(response.request_id, None)
        return usage


def register(app: faust.App, prices: PriceBook) -> None:
    requests = dead_lettering_topic(
        app, REQUESTS.name, partitions=REQUESTS.partitions, value_serializer=EVENT_CODEC
    )
    usage = app.topic(USAGE.name, partitions=USAGE.partitions, value_serializer=EVENT_CODEC)
    pending = app.Table("usage-pending", partitions=REQUESTS.partitions)
    done = app.Table("usage-done", partitions=REQUESTS.partitions)
    join = UsageJoin(pending, done, prices)

    @app.agent(requests, name="usage")
    async def usage_agent(stream: faust.StreamT[Event]) -> None:
        async for event in stream:
            response = join.on_event(event)
            if response is not None:
                recorded = join.bill(response)
                await usage.send(key=recorded.tenant.encode(), value=recorded)
