"""Applies each event of ``tollgate.requests`` to usage and meters, exactly once.

Everything one event changes lives in ONE changelog-backed table, on the event's own
partition: the request's entry (``r:<request id>``), the meters it counts against
(``m:<meter>#<partition>``) and the partition's position (``p:<partition>``). Each value
carries the offset of the last event that wrote it, and an event writes its meters first
and the request entry last. Kafka keeps a partition's writes in order, so after a crash
the table holds a prefix of them, and replaying from the committed offset is exact:

- request entry already at this offset: the event was fully applied (only its usage
  event is sent again; its id is deterministic, so downstream counts it once);
- otherwise the entry still shows the state before the event, the same decisions are
  taken again, and a meter already at this offset is left alone.

A duplicate event (the ingress publishes at least once) has a later offset, and the
request entry tells what already happened: a second ``request.received`` reserves
nothing, a second ending charges nothing.

Under load the agent applies events in batches through ``WriteBehind``: a batch's writes
are held and then written in the same order (meters, position, request entries), each key
once. A meter then carries the offset of the batch's last event touching it, so a replay,
batched the same way or not, skips every event that meter already includes.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar

import orjson

from processors.metering import mutations as mut
from processors.usage.accounting import prompt_tokens, record_usage
from schemas.events import (
    Event,
    MeterState,
    RequestReceived,
    ResponseCompleted,
    ResponseFailed,
    UsageRecorded,
    from_dict,
)
from schemas.limits_config import AlertSettings, BudgetSettings, RateLimitSettings
from schemas.meters import Subjects, budget_meters, provider_meter, rate_meters, spend_meter
from schemas.pricing import PriceBook

Change = Callable[[MeterState], None]


@dataclass(frozen=True, slots=True)
class Rules:
    budgets: tuple[BudgetSettings, ...] = ()
    rate_limits: tuple[RateLimitSettings, ...] = ()
    alerts: AlertSettings = field(default_factory=AlertSettings)

    @property
    def spend_minutes(self) -> int:
        spike = self.alerts.spend_spike
        return 0 if spike is None else spike.trailing_s // 60 + 1


@dataclass(slots=True)
class Applied:
    usage: UsageRecorded | None = None
    states: dict[str, MeterState] = field(default_factory=dict)
    """Meter states this event touched (table key → state), to publish."""


def _subjects(raw: list[Any]) -> Subjects:
    return Subjects(*raw)


def _who(event: RequestReceived | ResponseCompleted | ResponseFailed) -> list[Any]:
    """The request's subjects, as stored in its entry; a tagged call (replay or live split)
    carries its experiment, which ``experiment`` budgets meter (entries written before
    experiments have seven items: ``Subjects`` defaults the eighth)."""
    return [
        event.key_id,
        event.tenant,
        event.model,
        event.user,
        event.team,
        event.org,
        event.deployment or None,
        event.experiment or None,
    ]


class WriteBehind:
    """A batch's table writes, held until ``flush``: one changelog message per key per
    batch instead of per event (the hot budget meter is touched by every event).

    Set ``partition`` to the partition of the event about to be applied: a key's write
    goes back to the partition it came from (``write`` is called once per partition).
    """

    _ORDER: ClassVar[dict[str, int]] = {"m": 0, "p": 1}
    CACHE_MAX = 100_000
    """Keys whose last write is kept in memory (then the cache starts over)."""

    def __init__(
        self,
        table: MutableMapping[str, Any],
        write: Callable[[int, list[tuple[str, Any]]], None] | None = None,
    ) -> None:
        self.table = table
        self.write = write or self._write_all
        self.partition = 0
        self.pending: dict[str, tuple[int, Any]] = {}
        self.cache: dict[str, bytes] = {}
        """What this worker last wrote per key, encoded (a read gets its own copy).

        Under live traffic a batch is a few events, and reading its meters and request
        entries back through the table (RocksDB, Faust's serializer) cost more than
        applying them. Only the partition's owner writes its keys, so the cache holds
        until the assignment changes: ``forget`` then."""

    def get(self, key: str, default: Any = None) -> Any:
        if key in self.pending:
            return self.pending[key][1]
        cached = self.cache.get(key)
        if cached is not None:
            return orjson.loads(cached)
        return self.table.get(key, default)

    def forget(self) -> None:
        """Partitions were assigned or revoked: another worker may have written meanwhile."""
        self.cache.clear()

    def __setitem__(self, key: str, value: Any) -> None:
        self.pending[key] = (self.partition, value)

    def flush(self) -> None:
        """Meters first, then positions, then request entries (see the module doc)."""
        groups: dict[int, list[tuple[str, Any]]] = {}
        for key in sorted(self.pending, key=lambda k: self._ORDER.get(k[0], 2)):
            partition, value = self.pending[key]
            if isinstance(value, MeterState):  # held as the object while the batch lasts
                value = value.to_dict()
            groups.setdefault(partition, []).append((key, value))
        self.pending.clear()
        for partition, writes in groups.items():
            self.write(partition, writes)
            for key, value in writes:
                self._remember(key, value)

    def _remember(self, key: str, value: Any) -> None:
        if key.startswith("r:") and value.get("rcv") and value.get("end"):
            self.cache.pop(key, None)  # the request is over: read again only for a duplicate
            return
        if len(self.cache) >= self.CACHE_MAX:
            self.cache.clear()
        self.cache[key] = orjson.dumps(value)

    def _write_all(self, _: int, writes: list[tuple[str, Any]]) -> None:
        for key, value in writes:
            self.table[key] = value


class Ledger:
    def __init__(
        self, table: MutableMapping[str, Any] | WriteBehind, rules: Rules, prices: PriceBook
    ) -> None:
        self.table = table
        self.rules = rules
        self.prices = prices

    def apply(self, event: Event, partition: int, offset: int) -> Applied:
        out = Applied()
        if not isinstance(event, RequestReceived | ResponseCompleted | ResponseFailed):
            return out
        key = f"r:{event.request_id}"
        entry: dict[str, Any] = dict(self.table.get(key) or {})
        if entry.get("o", -1) >= offset:
            if entry.get("billed") == offset and "usage" in entry:
                out.usage = from_dict(entry["usage"])  # type: ignore[assignment]
            return out
        changes: dict[str, tuple[str, list[Change]]] = {}
        if isinstance(event, RequestReceived):
            done = self._received(event, entry, changes, out)
        else:
            done = self._ended(event, entry, changes, out)
        if not done:
            return out  # a duplicate: nothing to write
        for meter, (kind, funcs) in changes.items():
            out.states[f"m:{meter}#{partition}"] = self._write(
                meter, kind, partition, offset, event.ts, funcs
            )
        if entry.get("billed") == "now":
            entry["billed"] = offset
        self.table[f"p:{partition}"] = offset
        entry["o"] = offset
        self.table[key] = entry  # last: its offset says the whole event is in
        return out

    # -- per event type -------------------------------------------------------------------

    def _received(
        self, event: RequestReceived, entry: dict[str, Any], changes: dict, out: Applied
    ) -> bool:
        if entry.get("rcv"):
            return False
        entry["rcv"] = True
        entry["prompt"] = prompt_tokens(event)
        entry["who"] = _who(event)
        who = _subjects(entry["who"])
        if not entry.get("end"):
            usd, tokens = Decimal(event.est_usd or "0"), event.est_tokens
            entry["rsv"] = [str(usd), tokens]
            for _, meter in budget_meters(self.rules.budgets, who):
                self._add(changes, meter.id, "budget", lambda s: mut.reserve(s, usd, tokens))
        for _, meter in rate_meters(self.rules.rate_limits, who):
            if not entry.get("end"):
                self._add(changes, meter.id, "rate", lambda s: mut.reserve(s, Decimal(0), tokens))
            self._add(changes, meter.id, "rate", lambda s: mut.count_request(s, event.ts))
        waiting = entry.pop("resp", None)
        if waiting is not None:
            self._bill(ResponseCompleted(**waiting), entry, changes, out)
        return True

    def _ended(
        self,
        event: ResponseCompleted | ResponseFailed,
        entry: dict[str, Any],
        changes: dict,
        out: Applied,
    ) -> bool:
        if entry.get("end"):
            return False
        entry["end"] = True
        reserved = entry.pop("rsv", None)
        if reserved is not None:
            usd, tokens = Decimal(reserved[0]), int(reserved[1])
            who = _subjects(entry["who"])
            for _, meter in budget_meters(self.rules.budgets, who):
                self._add(changes, meter.id, "budget", lambda s: mut.release(s, usd, tokens))
            for _, meter in rate_meters(self.rules.rate_limits, who):
                self._add(changes, meter.id, "rate", lambda s: mut.release(s, Decimal(0), tokens))
        if event.provider:
            failed = isinstance(event, ResponseFailed) and (
                event.status >= 500 or event.status == 429
            )
            latency = event.latency_ms
            self._add(
                changes,
                provider_meter(event.provider),
                "provider",
                lambda s: mut.record_outcome(s, event.ts, failed, latency),
            )
        if isinstance(event, ResponseCompleted):
            if event.usage or "prompt" in entry:
                self._bill(event, entry, changes, out)
            else:
                fields = event.to_dict()
                fields.pop("type")
                entry["resp"] = fields
        return True

    def _bill(
        self, response: ResponseCompleted, entry: dict[str, Any], changes: dict, out: Applied
    ) -> None:
        usage = record_usage(response, entry.pop("prompt", None), self.prices)
        out.usage = usage
        cost = Decimal(usage.cost)
        tokens = usage.prompt_tokens + usage.completion_tokens
        who = Subjects(*_who(response))
        ts = response.ts
        for budget, meter in budget_meters(self.rules.budgets, who):
            self._add(
                changes,
                meter.id,
                "budget",
                partial(mut.charge, budget=budget, usd=cost, tokens=tokens, ts=ts),
            )
        for _, meter in rate_meters(self.rules.rate_limits, who):
            self._add(changes, meter.id, "rate", lambda s: mut.count_tokens(s, tokens, ts))
        if self.rules.spend_minutes and cost:
            keep = self.rules.spend_minutes
            self._add(
                changes,
                spend_meter(response.tenant),
                "spend",
                lambda s: mut.record_spend(s, ts, cost, keep),
            )
        entry["usage"] = usage.to_dict()
        entry["billed"] = "now"  # the offset, once ``apply`` writes the entry

    # -- writing --------------------------------------------------------------------------

    @staticmethod
    def _add(changes: dict, meter: str, kind: str, change: Change) -> None:
        changes.setdefault(meter, (kind, []))[1].append(change)

    def _write(  # noqa: PLR0917
        self, meter: str, kind: str, partition: int, offset: int, ts: int, funcs: list[Change]
    ) -> MeterState:
        key = f"m:{meter}#{partition}"
        raw = self.table.get(key)
        state = (
            raw
            if isinstance(raw, MeterState)
            else from_dict(raw)
            if raw
            else MeterState(
                id=f"{meter}#{partition}",  # deterministic: a replay writes the same value
                ts=ts,
                request_id="",
                tenant="",
                meter=meter,
                kind=kind,
                partition=partition,
            )
        )
        assert isinstance(state, MeterState)
        if state.offset < offset:  # at or past it: written before a crash, keep it
            for change in funcs:
                change(state)
            state.offset, state.source_ts, state.ts = offset, ts, ts
            # a batch's hot meter changes once per event: the dict is made once, at flush
            self.table[key] = state if isinstance(self.table, WriteBehind) else state.to_dict()
        return state
