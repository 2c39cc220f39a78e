"""Repeated injection attempts or leaks by one key → a key block on admission and an alert.

One table entry per key (``k:<key_id>``, on the partition of its verdicts: a key belongs to
one tenant, and verdicts are keyed by tenant) holds the attempts and leaks within the
window, each as ``[ts, request_id]``, and the newest verdict time seen (``mark``). Time is
the verdicts' own ``ts``, never the clock, so replaying the log gives the same blocks.

Exact on replay and redelivery, the same way as the metering ledger: a verdict touches
one key only, and a request already in the entry is not counted again, so a verdict
re-read after a crash (its write landed, its offset not committed) or delivered twice
changes nothing. The entry records which request escalated it (``by``): when that very
verdict comes again, the block and the alert are sent again with the same ids, in case the
crash fell between the table write and the sends. Counting restarts after an escalation
(``since``), so the attempts that caused a block do not cause the next one.
"""

from __future__ import annotations

import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.events import AlertRaised, Event, GuardVerdict, KeyBlocked, from_dict
from schemas.guards_config import Escalation

_BLOCK_NAMESPACE = uuid.UUID("b2a4f7d1-6c3e-4e0b-9f58-71d0a3c6e912")
ALERT_KIND = "guard.key_blocked"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def is_attempt(verdict: GuardVerdict, policy: Escalation) -> bool:
    """An injection attempt: scored at the threshold, or blocked inline with no entity to
    blame (then only the injection check can have blocked it)."""
    if verdict.source != "request":
        return False
    blocked_for_injection = verdict.action == "block" and not verdict.inline_entities
    return verdict.injection_score >= policy.injection_score or blocked_for_injection


def is_leak(verdict: GuardVerdict, policy: Escalation) -> bool:
    """An answer carrying PII or secrets: found inline, or by Presidio at ``leak_min_score``."""
    if verdict.source != "response":
        return False
    kinds = set(policy.leak_entities)
    if any(count > 0 and name in kinds for name, count in verdict.inline_entities.items()):
        return True
    return any(
        e.get("type") in kinds and float(e.get("score", 0)) >= policy.leak_min_score
        for e in verdict.entities
    )


@dataclass(slots=True)
class Entry:
    mark: int = 0
    since: int = 0
    attempts: list[list[Any]] = field(default_factory=list)
    leaks: list[list[Any]] = field(default_factory=list)
    by: list[str] = field(default_factory=list)
    """[request id, reason] of the verdict that escalated last."""
    sent: dict[str, Any] | None = None
    """That escalation's ``key.blocked``, to send again on its replay."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "mark": self.mark,
            "since": self.since,
            "attempts": self.attempts,
            "leaks": self.leaks,
            "by": self.by,
            "sent": self.sent,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Entry:
        return cls(**raw) if raw else cls()


class Escalator:
    def __init__(self, table: MutableMapping[str, Any], policy: Escalation) -> None:
        self.table = table
        self.policy = policy

    def apply(self, verdict: GuardVerdict) -> list[Event]:
        """The events to send (``key.blocked`` then ``alert.raised``), or none."""
        policy = self.policy
        if is_attempt(verdict, policy):
            reason = "injection"
        elif is_leak(verdict, policy):
            reason = "leak"
        else:
            return []
        limit = self._limit(reason)
        key = f"k:{verdict.key_id}"
        entry = Entry.from_dict(self.table.get(key))
        counted = entry.attempts if reason == "injection" else entry.leaks
        rid = verdict.request_id
        if any(r == rid for _, r in counted):
            if entry.by == [rid, reason] and entry.sent is not None:
                block = from_dict(entry.sent)
                assert isinstance(block, KeyBlocked)
                return [block, self._alert(block)]
            return []  # counted already: a redelivery, or a replay after a crash
        window_ms = policy.window_s * 1000
        entry.mark = max(entry.mark, verdict.ts)
        if verdict.ts <= entry.mark - window_ms:
            return []  # older than the window: it can no longer count
        counted.append([verdict.ts, rid])
        counted.sort()
        for series in (entry.attempts, entry.leaks):
            series[:] = [item for item in series if item[0] > entry.mark - window_ms]
        live = sum(1 for ts, _ in counted if ts > entry.since)
        out: list[Event] = []
        if live >= limit:
            block = self._block(verdict, reason, live)
            entry.since, entry.by, entry.sent = verdict.ts, [rid, reason], block.to_dict()
            out = [block, self._alert(block)]
        self.table[key] = entry.to_dict()
        return out

    def _block(self, verdict: GuardVerdict, reason: str, count: int) -> KeyBlocked:
        policy = self.policy
        return KeyBlocked(
            id=str(uuid.uuid5(_BLOCK_NAMESPACE, f"{verdict.key_id}|{verdict.ts}|{reason}")),
            ts=verdict.ts,
            request_id=verdict.request_id,
            tenant=verdict.tenant,
            key_id=verdict.key_id,
            action=policy.action,
            reason=reason,
            count=count,
            window_s=policy.window_s,
            since_ms=verdict.ts,
            until_ms=verdict.ts + policy.block_s * 1000,
            rpm=policy.throttle_rpm if policy.action == "throttle" else 0,
        )

    def _limit(self, reason: str) -> int:
        policy = self.policy
        return policy.max_injection_attempts if reason == "injection" else policy.max_leaks

    def _alert(self, block: KeyBlocked) -> AlertRaised:
        what = "prompt-injection attempts" if block.reason == "injection" else "answers leaking PII"
        done = "blocked" if block.action == "block" else f"throttled to {block.rpm} requests/min"
        subject = f"key:{block.key_id}"
        return AlertRaised(
            id=str(uuid.uuid5(_BLOCK_NAMESPACE, f"alert|{block.id}")),
            ts=block.ts,
            request_id=block.request_id,
            tenant=block.tenant,
            kind=ALERT_KIND,
            severity="critical" if block.action == "block" else "warning",
            subject=subject,
            message=(
                f"key {block.key_id} of tenant {block.tenant}: {block.count} {what} within "
                f"{block.window_s} s; {done} until {_iso(block.until_ms)}"
            ),
            value=float(block.count),
            limit=float(self._limit(block.reason)),
            period_start=block.since_ms,
        )
