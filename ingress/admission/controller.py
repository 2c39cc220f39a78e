"""Admission: may this request run now, given every budget and rate limit it counts against?

Decided in memory, without I/O, per meter:

    used = the processors' state (all partitions' shares) + what this replica admitted
           since that state + this request's estimate

and refused when ``used`` passes the limit: budgets (hard ones) with 429
``insufficient_quota`` until the period resets, rate limits with 429
``rate_limit_exceeded`` until the window frees.

Replicas do not see each other's admissions until the state reflects them (one lag), so
with N > 1 live replicas (counted from their heartbeats) each keeps its unreflected
admissions within 1/(2N) of what the state says is left. 1/N would be exact if the state
reflected every replica's admissions at the same pace, but it reflects the log in offset
order: a replica whose admissions are older gets them counted first and its share of the
remainder back, while a peer still holds a full share (measured: 53 requests past a
300-request budget with 1/N; ``tests/ingress/test_admission_replicas.py`` replays such
orders). Half shares leave room for that; only a replica's first unreflected request may
take more, so N replicas overshoot by at most one request each. A lone replica knows all
that is unreflected and takes what is left.
When the processors have been silent longer than ``max_state_age_s`` the view is stale and
the replica fails open or closed, per config.

A request refused only for this replica's share (the budget or window has room, but the
state does not count this replica's latest admissions yet) is not answered 429 at once:
``admit`` holds it until the next progress mark and decides again, for up to
``share_wait_s``. The share is free once the state catches up, so the client would only
come back to the same question; and answered at once, under load, such clients came back
several times per served request (10,672 share refusals for 3,000 answers in the
admission bench), spending the CPU the processors needed to catch up. A held request
whose client leaves stops waiting (``ClientClosedError``, 499): nothing is sent upstream.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any, Literal

from ingress.admission.estimate import estimate
from ingress.admission.local import Admitted, LocalAdmissions, Totals
from ingress.admission.view import AdmissionView
from ingress.auth import Principal
from ingress.errors import (
    BudgetExceededError,
    ClientClosedError,
    GatewayError,
    KeyBlockedError,
    OverloadedError,
    RateLimitError,
)
from schemas.config import TollgateConfig
from schemas.events import now_ms
from schemas.limits_config import BudgetSettings, RateLimitSettings
from schemas.meters import MINUTE_MS, Meter, Subjects, budget_meters, period_bounds, rate_meters
from schemas.meters import sliding as sliding_count
from schemas.pricing import Price


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted request: its estimate, its place in the local ledger, its headers."""

    entry: Admitted | None = None
    usd: Decimal = Decimal(0)
    tokens: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    prompt_tokens: int | None = None
    """Counted for the estimate; None when the request was not metered."""


NOT_METERED = Ticket()
SHARE_WAITERS_MAX = 1000
"""Requests one replica holds for its share at most; more are refused at once."""
GONE_CHECK_S = 0.25
"""A held request asks whether its client is still there at least this often."""
ShareOutcome = Literal["admitted", "refused", "left"]


Decision = Callable[[], Ticket]
"""One request's admission, decided from the view as it is when called."""


class ShareTaken(Exception):
    """Refused only because this replica's share of what is left is taken: free again once
    the processors' state counts the replica's latest admissions."""

    def __init__(self, refusal: GatewayError) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


class Admission:
    def __init__(
        self,
        config: TollgateConfig,
        view: AdmissionView,
        local: LocalAdmissions,
        replica: str = "",
        on_share_wait: Callable[[ShareOutcome, float], None] | None = None,
    ) -> None:
        self.replica = replica
        self.on_share_wait = on_share_wait
        """Called with how a held request's wait ended, and how long it was."""
        self.settings = config.admission
        self.budgets = config.budgets
        self.rate_limits = config.rate_limits
        self.view = view
        self.local = local
        self.escalation = config.guards.escalation
        self.share_waiting = 0
        """Requests held for this replica's share right now (``admit``)."""
        self._throttled: dict[str, deque[int]] = {}
        """Per throttled key, when this replica admitted it within the last minute (a config
        reload starts afresh: at most one extra minute's worth)."""

    @property
    def enabled(self) -> bool:
        return bool(self.budgets or self.rate_limits or self.escalation)

    def check(self, decide: Decision) -> Ticket:
        """Admits or raises, at once."""
        try:
            return decide()
        except ShareTaken as taken:
            raise taken.refusal from None

    async def admit(
        self, decide: Decision, gone: Callable[[], Awaitable[bool]] | None = None
    ) -> Ticket:
        """``check``, but a refusal of this replica's share only waits for the state to
        catch up (each progress mark, up to ``share_wait_s``) and is decided again.
        ``gone`` says whether the client has left: then the wait ends in a 499."""
        try:
            return decide()
        except ShareTaken as taken:
            refusal = taken.refusal
            if self.settings.share_wait_s <= 0 or self.share_waiting >= SHARE_WAITERS_MAX:
                raise refusal from None
        started = time.monotonic()
        deadline = started + self.settings.share_wait_s
        self.share_waiting += 1
        try:
            while (left := deadline - time.monotonic()) > 0:
                await self.view.progressed.wait(min(left, GONE_CHECK_S))
                if gone is not None and await gone():
                    self._waited("left", started)
                    raise ClientClosedError(
                        "the client closed the connection while its request waited for "
                        "this gateway's share of a nearly spent limit; nothing was sent "
                        "upstream"
                    )
                try:
                    ticket = decide()
                except ShareTaken as taken:
                    refusal = taken.refusal
                    continue
                self._waited("admitted", started)
                return ticket
        finally:
            self.share_waiting -= 1
        self._waited("refused", started)
        raise refusal from None

    def _waited(self, outcome: ShareOutcome, since: float) -> None:
        if self.on_share_wait is not None:
            self.on_share_wait(outcome, time.monotonic() - since)

    def decision(
        self,
        who: Principal,
        model: str,
        deployment: str | None,
        body: dict[str, Any],
        price: Price | None,
        *,
        experiment: str = "",
        prompt_tokens: int | None = None,
    ) -> Decision:
        """What does not change while a request waits (its meters, its estimate; its
        prompt counted here unless ``prompt_tokens``) worked out once, for ``check`` or
        ``admit``; the call decides from the view as it is then (raises ``ShareTaken``
        or a ``GatewayError``)."""
        self._check_guard_block(who)
        budgets, rates = self._meters(who, model, deployment, experiment)
        if not budgets and not rates:
            return lambda: NOT_METERED
        usd, tokens, prompt = estimate(
            body, model, price, self.settings.default_max_tokens, prompt_tokens
        )
        meters = tuple(m.id for _, m in budgets) + tuple(m.id for _, m in rates)

        def decide() -> Ticket:
            now = now_ms()
            stale = self.view.age_ms(now) > self.settings.max_state_age_s * 1000
            if stale and self.settings.when_stale == "closed":
                raise OverloadedError(
                    "spend and rate state is stale (the processors have not reported for "
                    f"over {self.settings.max_state_age_s:g} s), and this gateway fails "
                    "closed; retry shortly, or check `tollgate worker` and Kafka",
                    code="admission_state_stale",
                    headers={"retry-after": "5"},
                )
            headers: dict[str, str] = {}
            refusals: list[GatewayError] = []
            replicas = self.view.live_replicas(self.replica, now)
            self._check_budgets(
                budgets, usd, tokens, now=now, replicas=replicas, headers=headers, refusals=refusals
            )
            self._check_rates(
                rates, tokens, now=now, replicas=replicas, headers=headers, refusals=refusals
            )
            if refusals:  # only after every meter: one that is spent refuses at once
                raise ShareTaken(refusals[0])
            return Ticket(self.local.add(meters, usd, tokens), usd, tokens, headers, prompt)

        return decide

    def metered(
        self, who: Principal, model: str, deployment: str | None, experiment: str = ""
    ) -> bool:
        """Whether ``check`` would count this request against any budget or rate limit."""
        budgets, rates = self._meters(who, model, deployment, experiment)
        return bool(budgets or rates)

    def _meters(
        self, who: Principal, model: str, deployment: str | None, experiment: str
    ) -> tuple[list[tuple[BudgetSettings, Meter]], list[tuple[RateLimitSettings, Meter]]]:
        subjects = _subjects(who, model, deployment, experiment)
        return budget_meters(self.budgets, subjects), rate_meters(self.rate_limits, subjects)

    # -- keys the guards escalated -------------------------------------------------------

    def _check_guard_block(self, who: Principal) -> None:
        """A key the processors blocked or throttled after repeated injection attempts or
        leaks (``key.blocked`` on ``tollgate.admission``), until the block ends."""
        block = self.view.block_of(who.key_id)
        now = now_ms()
        if block is None or block.until_ms <= now:
            self._throttled.pop(who.key_id, None)
            return
        why = (
            "prompt-injection attempts"
            if block.reason == "injection"
            else "answers that leaked personal data or secrets"
        )
        what = f"{block.count} {why} within {block.window_s} s"
        ask = "ask your Tollgate admin to review the key's guard verdicts (table `verdicts`)"
        if block.action != "throttle":
            wait = max(math.ceil((block.until_ms - now) / 1000), 1)
            raise KeyBlockedError(
                f"key `{who.key_id}` is blocked until {_iso(block.until_ms)} after {what}; "
                f"{ask}, or retry after {wait} s",
                headers={"retry-after": str(wait)},
            )
        recent = self._throttled.setdefault(who.key_id, deque())
        while recent and recent[0] <= now - MINUTE_MS:
            recent.popleft()
        # each live replica admits its share, so together they stay near the rate
        allowed = max(block.rpm // self.view.live_replicas(self.replica, now), 1)
        if len(recent) >= allowed:
            wait = max(math.ceil((recent[0] + MINUTE_MS - now) / 1000), 1)
            raise RateLimitError(
                f"key `{who.key_id}` is throttled to {block.rpm} requests/min until "
                f"{_iso(block.until_ms)} after {what}; {ask}, or retry after {wait} s",
                code="key_throttled",
                headers={
                    "retry-after": str(wait),
                    "x-ratelimit-limit": str(block.rpm),
                    "x-ratelimit-remaining": "0",
                },
            )
        recent.append(now)

    # -- budgets --------------------------------------------------------------------------

    def _budget_state(self, budget: BudgetSettings, meter: Meter, now: int) -> tuple[Decimal, int]:
        """Spent this period and reserved, as published (all partitions' shares)."""
        start, _ = period_bounds(budget, now)
        usd, tokens = Decimal(0), 0
        for share in self.view.share_of(meter.id):
            if share.period_start == start:
                usd += Decimal(share.spent_usd)
                tokens += share.tokens
            usd += Decimal(share.reserved_usd)
            tokens += share.reserved_tokens
        return usd, tokens

    def _check_budgets(
        self,
        budgets: list[tuple[BudgetSettings, Meter]],
        usd: Decimal,
        tokens: int,
        *,
        now: int,
        replicas: int,
        headers: dict[str, str],
        refusals: list[GatewayError],
    ) -> None:
        tightest: tuple[float, str, int] | None = None
        for budget, meter in budgets:
            state_usd, state_tokens = self._budget_state(budget, meter, now)
            mine = self.local.of(meter.id)
            past = partial(_past, replicas=replicas, local=mine)
            used_usd, used_tokens = state_usd + mine.usd, state_tokens + mine.tokens
            _, end = period_bounds(budget, now)
            stretch = Decimal(1) + Decimal(str(budget.burst))
            over = (
                budget.max_usd is not None
                and past(budget.max_usd * stretch, state_usd, mine.usd, usd)
            ) or (
                budget.max_tokens is not None
                and past(
                    budget.max_tokens * stretch,
                    Decimal(state_tokens),
                    Decimal(mine.tokens),
                    Decimal(tokens),
                )
            )
            if over == "share" and budget.enforcement == "hard":
                refusals.append(
                    BudgetExceededError(
                        f"budget `{budget.name}` for {budget.scope} `{meter.subject}` is "
                        f"nearly spent and what is left is shared by {replicas} gateway "
                        "replicas until their latest spend is counted; retry in a second",
                        headers={"retry-after": "1", "x-budget-period-reset": _iso(end)},
                    )
                )
            elif over and budget.enforcement == "hard":
                wait = max(math.ceil((end - now) / 1000), 1)
                raise BudgetExceededError(
                    f"budget `{budget.name}` for {budget.scope} `{meter.subject}` is spent "
                    f"for this {budget.period} period; it resets at {_iso(end)}. Ask your "
                    "Tollgate admin to raise it, or retry after the reset",
                    headers={
                        "retry-after": str(wait),
                        "x-budget-remaining": "0",
                        "x-budget-period-reset": _iso(end),
                    },
                )
            if budget.max_usd is not None:
                left = max(budget.max_usd - used_usd - usd, Decimal(0))
                share = float(left / budget.max_usd)
                remaining = f"{left:.6f}"
            else:
                assert budget.max_tokens is not None
                left_tokens = max(budget.max_tokens - used_tokens - tokens, 0)
                share = left_tokens / budget.max_tokens
                remaining = str(left_tokens)
            if tightest is None or share < tightest[0]:
                tightest = (share, remaining, end)
        if tightest is not None:
            headers["x-budget-remaining"] = tightest[1]
            headers["x-budget-period-reset"] = _iso(tightest[2])

    # -- rate windows ---------------------------------------------------------------------

    def _check_rates(
        self,
        rates: list[tuple[RateLimitSettings, Meter]],
        tokens: int,
        *,
        now: int,
        replicas: int,
        headers: dict[str, str],
        refusals: list[GatewayError],
    ) -> None:
        tightest: tuple[int, int] | None = None
        next_minute_s = max(math.ceil((MINUTE_MS - now % MINUTE_MS) / 1000), 1)
        for limit, meter in rates:
            shares = self.view.share_of(meter.id)
            mine = self.local.of(meter.id)
            past = partial(_past, replicas=replicas, local=mine)
            if limit.concurrent is not None:
                in_flight = sum(s.in_flight for s in shares)
                over = past(limit.concurrent, in_flight, mine.requests, 1)
                if over:
                    what = f"{limit.concurrent} requests in flight"
                    refusals += self._refuse(limit, meter, what, over, 1)
            if limit.requests_per_minute is not None:
                state = sum(sliding_count(s.minute, s.requests, now) for s in shares)
                used = state + mine.requests
                over = past(limit.requests_per_minute, state, mine.requests, 1)
                if over:
                    rpm = f"{limit.requests_per_minute} requests/min"
                    refusals += self._refuse(limit, meter, rpm, over, next_minute_s)
                left = max(int(limit.requests_per_minute - used - 1), 0)
                if tightest is None or left < tightest[1]:
                    tightest = (limit.requests_per_minute, left)
            if limit.tokens_per_minute is not None:
                used_tokens = sum(
                    sliding_count(s.minute, s.window_tokens, now) + s.reserved_tokens
                    for s in shares
                )
                over = past(limit.tokens_per_minute, used_tokens, mine.tokens, tokens)
                if over:
                    tpm = f"{limit.tokens_per_minute} tokens/min"
                    refusals += self._refuse(limit, meter, tpm, over, next_minute_s)
                headers["x-ratelimit-limit-tokens"] = str(limit.tokens_per_minute)
                headers["x-ratelimit-remaining-tokens"] = str(
                    max(int(limit.tokens_per_minute - used_tokens - mine.tokens - tokens), 0)
                )
        if tightest is not None:
            headers["x-ratelimit-limit"] = str(tightest[0])
            headers["x-ratelimit-remaining"] = str(tightest[1])

    def _refuse(
        self, limit: RateLimitSettings, meter: Meter, what: str, why: Past, wait_s: int
    ) -> list[GatewayError]:
        """Raises for a window that is full; returns the refusal of a share only."""
        if why == "share":
            what += ", shared by the gateway replicas until their latest requests are counted"
            wait_s = 1
        refusal = RateLimitError(
            f"rate limit `{limit.name}` for {limit.scope} `{meter.subject}` reached "
            f"({what}); retry after {wait_s} s",
            headers={"retry-after": str(wait_s), "x-ratelimit-remaining": "0"},
        )
        if why == "share":
            return [refusal]
        raise refusal


def _subjects(who: Principal, model: str, deployment: str | None, experiment: str) -> Subjects:
    """A tagged call (replay or live split) also counts against its experiment's budget."""
    return Subjects(
        who.key_id, who.tenant, model, who.user, who.team, who.org, deployment, experiment or None
    )


Past = Literal["limit", "share"] | None
HEADROOM = 2
"""With peers, a replica's unreflected admissions stay within 1/(HEADROOM x N) of what is
left (see the module doc)."""


def _past(limit: Any, state: Any, mine: Any, this: Any, *, replicas: int, local: Totals) -> Past:
    """Would admitting ``this`` pass ``limit`` ("limit"), or this replica's share of what is
    left ("share", free again once the state catches up)?

    Numbers are all Decimal or all int/float. A replica with nothing unreflected may take
    all that is left (so a small remainder stays usable); beyond that, its share.
    """
    if state + mine + this > limit:
        return "limit"
    shares = replicas * HEADROOM if replicas > 1 else 1
    if local.requests > 0 and (mine + this) * shares > limit - state:
        return "share"
    return None


def build_admission(
    config: TollgateConfig,
    bootstrap_servers: str,
    on_lag: Callable[[float], None],
    replica: str = "",
    on_share_wait: Callable[[ShareOutcome, float], None] | None = None,
) -> Admission:
    """The view (not started: the app starts it when some rule needs it) and the ledger."""
    local = LocalAdmissions(
        hold_s=max(2 * config.admission.max_state_age_s, 30.0), on_covered=on_lag
    )
    view = AdmissionView(bootstrap_servers, local.covered)
    return Admission(config, view, local, replica, on_share_wait)
