"""The ledger's exactly-once rules, in process: duplicates, order, crashes between writes."""

from __future__ import annotations

import copy
import dataclasses
from decimal import Decimal
from typing import Any

import pytest

from processors.metering.ledger import Ledger, Rules, WriteBehind
from schemas.events import (
    MeterState,
    RequestReceived,
    RequestRefused,
    ResponseCompleted,
    ResponseFailed,
)
from schemas.limits_config import BudgetSettings, RateLimitSettings
from schemas.pricing import build_price_book

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
RULES = Rules(
    budgets=(
        BudgetSettings(name="per-key", scope="key", max_usd=Decimal("1"), period="daily"),
        BudgetSettings(name="acme", scope="tenant", match="acme", max_tokens=10_000),
    ),
    rate_limits=(RateLimitSettings(name="rpm", scope="tenant", requests_per_minute=100),),
)
PRICES = build_price_book([])
USAGE = {"prompt_tokens": 1000, "completion_tokens": 500}
COST = Decimal("0.00045")  # gpt-4o-mini: 1000 x 0.15 + 500 x 0.60 per 1M


class RecordingTable(dict[str, Any]):
    """A dict that remembers the order of writes, to replay a crash after any of them."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.writes: list[tuple[str, Any]] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append((key, copy.deepcopy(value)))
        super().__setitem__(key, value)


def received(rid: str, ts: int = T0, est: str = "0.01") -> RequestReceived:
    return RequestReceived(
        request_id=rid,
        tenant="acme",
        key_id="k1",
        endpoint="/v1/chat/completions",
        model="gpt-4o-mini",
        body={"messages": [{"role": "user", "content": "hello there"}]},
        ts=ts,
        est_usd=est,
        est_tokens=600,
    )


def completed(
    rid: str, ts: int = T0 + 500, usage: dict[str, int] | None = USAGE
) -> ResponseCompleted:
    return ResponseCompleted(
        request_id=rid,
        tenant="acme",
        key_id="k1",
        provider="openai",
        model="gpt-4o-mini",
        status=200,
        latency_ms=120.0,
        outputs=["general kenobi"],
        usage=usage,
        ts=ts,
    )


def meter(table: dict[str, Any], name: str, partition: int = 0) -> MeterState:
    return MeterState(**{k: v for k, v in table[f"m:{name}#{partition}"].items() if k != "type"})


def test_a_request_reserves_then_charges_its_real_cost() -> None:
    table: dict[str, Any] = {}
    ledger = Ledger(table, RULES, PRICES)
    ledger.apply(received("r1"), 0, 10)
    key = meter(table, "budget:per-key:k1")
    assert (key.reserved_usd, key.reserved_tokens, key.in_flight) == ("0.01", 600, 1)
    assert meter(table, "rate:rpm:acme").requests == [1, 0]
    applied = ledger.apply(completed("r1"), 0, 11)
    assert applied.usage is not None and Decimal(applied.usage.cost) == COST
    key = meter(table, "budget:per-key:k1")
    assert Decimal(key.spent_usd) == COST and key.tokens == 1500
    assert (Decimal(key.reserved_usd), key.reserved_tokens, key.in_flight) == (0, 0, 0)
    assert meter(table, "budget:acme:acme").tokens == 1500
    rate = meter(table, "rate:rpm:acme")
    assert (rate.in_flight, rate.window_tokens) == (0, [1500, 0])
    assert table["p:0"] == 11


def test_duplicates_count_once() -> None:
    table: dict[str, Any] = {}
    ledger = Ledger(table, RULES, PRICES)
    ledger.apply(received("r1"), 0, 1)
    ledger.apply(completed("r1"), 0, 2)
    before = copy.deepcopy(table)
    assert ledger.apply(received("r1"), 0, 3).usage is None
    assert ledger.apply(completed("r1"), 0, 4).usage is None
    assert (
        ledger.apply(
            ResponseFailed(
                request_id="r1",
                tenant="acme",
                key_id="k1",
                provider="openai",
                model="gpt-4o-mini",
                status=500,
                latency_ms=1.0,
                error_type="x",
                error_message="y",
            ),
            0,
            5,
        ).usage
        is None
    )
    assert {k: v for k, v in table.items() if k != "p:0"} == {
        k: v for k, v in before.items() if k != "p:0"
    }


def test_a_response_before_its_request_is_billed_when_the_request_arrives() -> None:
    table: dict[str, Any] = {}
    ledger = Ledger(table, RULES, PRICES)
    assert ledger.apply(completed("r1", usage=None), 0, 1).usage is None
    usage = ledger.apply(received("r1"), 0, 2).usage
    assert usage is not None and usage.token_source == "tiktoken"
    key = meter(table, "budget:per-key:k1")
    assert key.in_flight == 0 and Decimal(key.reserved_usd) == 0
    assert Decimal(key.spent_usd) == Decimal(usage.cost) > 0


@pytest.mark.parametrize("event_index", [0, 1])
def test_a_crash_after_any_write_replays_to_the_same_state(event_index: int) -> None:
    events = [received("r1"), completed("r1")]
    full = RecordingTable()
    ledger = Ledger(full, RULES, PRICES)
    for offset, event in enumerate(events[:event_index]):
        ledger.apply(event, 0, offset)
    start = copy.deepcopy(dict(full))
    full.writes.clear()
    expected_usage = ledger.apply(events[event_index], 0, event_index).usage
    writes = list(full.writes)
    assert len(writes) >= 3
    for durable in range(len(writes) + 1):
        table = RecordingTable(copy.deepcopy(start))
        for key, value in writes[:durable]:
            dict.__setitem__(table, key, copy.deepcopy(value))
        replayed = Ledger(table, RULES, PRICES).apply(events[event_index], 0, event_index)
        assert dict(table) == dict(full), f"after {durable} durable writes"
        if expected_usage is not None:
            assert replayed.usage is not None and replayed.usage.id == expected_usage.id


BATCH = [received("r1"), received("r2"), completed("r1"), received("r1"), completed("r2")]


def _apply_batched(table: dict[str, Any], events: list[Any], batch: int) -> None:
    behind = WriteBehind(table)
    ledger = Ledger(behind, RULES, PRICES)
    for offset, event in enumerate(events):
        ledger.apply(event, 0, offset)
        if offset % batch == batch - 1:
            behind.flush()
    behind.flush()


@pytest.mark.parametrize("replay_batch", [1, 2, 5])
def test_a_crash_inside_a_batch_flush_replays_to_the_same_state(replay_batch: int) -> None:
    """One batch of five events (a duplicate among them), its flush cut after any write."""
    full = RecordingTable()
    _apply_batched(full, BATCH, batch=len(BATCH))
    unbatched: dict[str, Any] = {}
    ledger = Ledger(unbatched, RULES, PRICES)
    for offset, event in enumerate(BATCH):
        ledger.apply(event, 0, offset)
    assert dict(full) == unbatched  # batching changes how often a key is written, not what
    writes = list(full.writes)
    assert len(writes) < 5 * 3  # each key once per batch
    for durable in range(len(writes) + 1):
        table = RecordingTable()
        for key, value in writes[:durable]:
            dict.__setitem__(table, key, copy.deepcopy(value))
        _apply_batched(table, BATCH, batch=replay_batch)
        assert dict(table) == dict(full), f"after {durable} durable writes"


def test_spend_lands_in_the_period_of_the_response() -> None:
    table: dict[str, Any] = {}
    ledger = Ledger(table, RULES, PRICES)
    day = 86_400_000
    ledger.apply(received("r1"), 0, 1)
    ledger.apply(completed("r1"), 0, 2)
    ledger.apply(received("r2", ts=T0 + day), 0, 3)
    ledger.apply(completed("r2", ts=T0 + day + 10), 0, 4)
    key = meter(table, "budget:per-key:k1")
    assert key.period_start == T0 + day
    assert Decimal(key.spent_usd) == COST


def test_a_batch_writes_each_key_back_to_the_partition_of_its_event() -> None:
    written: dict[int, list[str]] = {}
    behind = WriteBehind(
        {}, lambda p, writes: written.setdefault(p, []).extend(k for k, _ in writes)
    )
    ledger = Ledger(behind, RULES, PRICES)
    for partition, rid in ((0, "a"), (3, "b"), (0, "c")):
        behind.partition = partition
        ledger.apply(received(rid), partition, 10)
    behind.flush()
    assert sorted(written) == [0, 3]
    assert "r:b" in written[3] and {"r:a", "r:c"} <= set(written[0])
    assert all(k.endswith("#3") for k in written[3] if k.startswith("m:"))
    assert not behind.pending


class CountingTable(dict[str, Any]):
    """A table that counts reads: the write-behind cache should spare most of them."""

    def __init__(self) -> None:
        super().__init__()
        self.read: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.read.append(key)
        return super().get(key, default)


def test_a_worker_reads_back_its_own_writes_from_memory_until_the_assignment_changes() -> None:
    table = CountingTable()
    behind = WriteBehind(table)
    ledger = Ledger(behind, RULES, PRICES)
    ledger.apply(received("r1"), 0, 1)
    behind.flush()
    written, table.read = set(table), []
    ledger.apply(completed("r1"), 0, 2)  # its entry and meters, as the first batch left them
    behind.flush()
    assert table.read and not written & set(table.read)  # only meters new to this event
    assert "r:r1" not in behind.cache  # the request is over: no reason to keep it
    state = behind.get("m:budget:per-key:k1#0")
    state["spent_usd"] = "999"  # a read is a copy: the next one is what was written
    assert behind.get("m:budget:per-key:k1#0") == table["m:budget:per-key:k1#0"]
    behind.forget()  # a rebalance: the table is the truth again
    table.read = []
    behind.get("m:budget:per-key:k1#0")
    assert table.read == ["m:budget:per-key:k1#0"]


def test_the_cache_gives_the_same_state_as_reading_the_table() -> None:
    cached: dict[str, Any] = {}
    _apply_batched(cached, BATCH * 3, batch=2)
    uncached: dict[str, Any] = {}
    behind = WriteBehind(uncached)
    ledger = Ledger(behind, RULES, PRICES)
    for offset, event in enumerate(BATCH * 3):
        ledger.apply(event, 0, offset)
        if offset % 2 == 1:
            behind.flush()
            behind.forget()
    behind.flush()
    assert cached == uncached


def test_without_provider_usage_the_ingress_count_bills_a_body_that_was_not_kept() -> None:
    table: dict[str, Any] = {}
    ledger = Ledger(table, RULES, PRICES)
    dropped = dataclasses.replace(received("r1"), body={}, body_kept="none", prompt_tokens=57)
    ledger.apply(dropped, 0, 1)
    billed = ledger.apply(completed("r1", usage=None), 0, 2).usage
    assert billed is not None and billed.token_source == "tiktoken"
    assert billed.prompt_tokens == 57  # the stored body is empty: it would have counted ~3


def test_a_refused_request_counts_nowhere_and_leaves_no_entry() -> None:
    table: dict[str, Any] = {}
    ledger = Ledger(table, RULES, PRICES)
    refused = RequestRefused(
        request_id="r1",
        tenant="acme",
        key_id="k1",
        model="gpt-4o-mini",
        status=429,
        error_type="rate_limit_error",
        error_code="rate_limited",
        error_message="rate limit `rpm` reached",
    )
    applied = ledger.apply(refused, 0, 1)
    assert applied.states == {} and applied.usage is None
    assert table == {}  # no request entry, no meter: nothing waits for a response
