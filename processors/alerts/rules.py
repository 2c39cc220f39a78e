"""When a meter's state deserves an alert: pure functions over the summed shares.

Each check gets every partition's share of one meter and what already fired for it, and
returns the alerts to raise with the updated record of what fired. Alert ids are derived
from (kind, subject, period or minute, threshold), so a check repeated after a crash
raises alerts with the same ids and the webhook sink delivers each once.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from processors.metering.mutations import LATENCY_BOUNDS_MS
from schemas.events import AlertRaised, MeterState
from schemas.limits_config import BudgetSettings, ProviderHealthSettings, SpendSpikeSettings

_ALERT_NAMESPACE = uuid.UUID("8e0b5a7e-3f7c-4d3e-9a1d-6b2f0c9d4e21")
Fired = dict[str, Any]


def alert_id(kind: str, subject: str, *parts: object) -> str:
    return str(uuid.uuid5(_ALERT_NAMESPACE, "|".join([kind, subject, *map(str, parts)])))


def _alert(kind: str, severity: str, subject: str, message: str, **fields: Any) -> AlertRaised:
    key = fields.pop("key")
    return AlertRaised(
        id=alert_id(kind, subject, *key),
        request_id="",
        tenant=fields.pop("tenant", ""),
        kind=kind,
        severity=severity,
        subject=subject,
        message=message,
        **fields,
    )


def budget_alerts(
    budget: BudgetSettings, meter: str, shares: list[MeterState], fired: Fired
) -> tuple[list[AlertRaised], Fired]:
    """The highest threshold newly crossed this period, and exhaustion, each once."""
    period = max(s.period_start for s in shares)
    current = [s for s in shares if s.period_start == period]
    spent = sum((Decimal(s.spent_usd) for s in current), Decimal(0))
    tokens = sum(s.tokens for s in current)
    ratios = []
    if budget.max_usd is not None:
        ratios.append((float(spent / budget.max_usd), float(spent), float(budget.max_usd), "USD"))
    if budget.max_tokens is not None:
        ratios.append((tokens / budget.max_tokens, tokens, budget.max_tokens, "tokens"))
    ratio, value, limit, unit = max(ratios)
    if fired.get("period") != period:
        fired = {"period": period, "thresholds": []}
    done = set(fired["thresholds"])
    crossed = [t for t in budget.thresholds if ratio >= t and t not in done]
    alerts: list[AlertRaised] = []
    subject = meter
    if crossed:
        top = max(crossed)
        alerts.append(
            _alert(
                "budget.threshold",
                "critical" if top >= 0.9 else "warning",
                subject,
                f"budget {budget.name} ({budget.scope} {meter.split(':', 2)[2]}) at "
                f"{ratio:.0%}: {value:g} of {limit:g} {unit} this {budget.period} period",
                key=(period, top),
                value=value,
                limit=limit,
                period_start=period,
            )
        )
    if ratio >= 1 and 1.0 not in done and "exhausted" not in done:
        action = "requests are refused" if budget.enforcement == "hard" else "soft: alert only"
        alerts.append(
            _alert(
                "budget.exhausted",
                "critical",
                subject,
                f"budget {budget.name} exhausted: {value:g} of {limit:g} {unit} ({action})",
                key=(period, "exhausted"),
                value=value,
                limit=limit,
                period_start=period,
            )
        )
        crossed.append("exhausted")  # type: ignore[arg-type]
    fired = {"period": period, "thresholds": sorted(done | set(crossed), key=str)}
    return alerts, fired


def _by_minute(shares: list[MeterState]) -> dict[int, list[Any]]:
    rows: dict[int, list[Any]] = {}
    for share in shares:
        for minute, row in share.minutes.items():
            rows.setdefault(int(minute), []).append(row)
    return rows


def spend_spike(
    settings: SpendSpikeSettings, tenant: str, shares: list[MeterState], fired: Fired
) -> tuple[list[AlertRaised], Fired]:
    """Spend in the last window against the trailing rate before it, once per window."""
    rows = _by_minute(shares)
    if not rows:
        return [], fired
    now = max(rows)
    window = settings.window_s // 60
    trailing = settings.trailing_s // 60 - window

    def spent(first: int, last: int) -> Decimal:
        return sum(
            (Decimal(r[0]) for m in range(first, last + 1) for r in rows.get(m, ())), Decimal(0)
        )

    recent = spent(now - window + 1, now)
    before = spent(now - window - trailing + 1, now - window)
    if before <= 0 or now < fired.get("quiet_until", 0):
        return [], fired
    expected = before / trailing * window
    if recent < settings.min_usd or recent <= expected * Decimal(str(settings.factor)):
        return [], fired
    alert = _alert(
        "spend.spike",
        "warning",
        f"tenant:{tenant}",
        f"tenant {tenant} spent ${recent:.4f} in {settings.window_s}s, "
        f"{recent / expected:.1f}x its trailing rate (${expected:.4f} per window)",
        key=(now,),
        tenant=tenant,
        value=float(recent),
        limit=float(expected),
    )
    return [alert], {"quiet_until": now + window}


def _p95_ms(histogram: list[int]) -> float:
    total = sum(histogram)
    seen = 0
    for i, count in enumerate(histogram):
        seen += count
        if seen >= 0.95 * total:
            return float(LATENCY_BOUNDS_MS[min(i, len(LATENCY_BOUNDS_MS) - 1)])
    return 0.0


def provider_health(
    settings: ProviderHealthSettings, provider: str, shares: list[MeterState], fired: Fired
) -> tuple[list[AlertRaised], Fired]:
    """Error rate and p95 latency per minute with enough traffic, each once per minute."""
    alerts: list[AlertRaised] = []
    done = set(fired.get("sent", []))
    for minute, rows in sorted(_by_minute(shares).items()):
        merged = [sum(column) for column in zip(*rows, strict=True)]
        requests, errors, histogram = merged[0], merged[1], merged[2:]
        if requests < settings.min_requests:
            continue
        rate = errors / requests
        if rate > settings.max_error_rate and f"e{minute}" not in done:
            alerts.append(
                _alert(
                    "provider.error_rate",
                    "critical",
                    f"provider:{provider}",
                    f"provider {provider}: {rate:.0%} of {requests} requests failed in the "
                    f"minute from {minute * 60}s (limit {settings.max_error_rate:.0%})",
                    key=(minute,),
                    value=rate,
                    limit=settings.max_error_rate,
                )
            )
            done.add(f"e{minute}")
        p95 = _p95_ms(histogram)
        if p95 > settings.max_latency_p95_ms and f"l{minute}" not in done:
            alerts.append(
                _alert(
                    "provider.latency",
                    "warning",
                    f"provider:{provider}",
                    f"provider {provider}: p95 latency above {p95:g} ms in the minute from "
                    f"{minute * 60}s (limit {settings.max_latency_p95_ms:g} ms)",
                    key=(minute,),
                    value=p95,
                    limit=settings.max_latency_p95_ms,
                )
            )
            done.add(f"l{minute}")
    recent = sorted(done, key=lambda k: int(k[1:]))[-20:]
    return alerts, {"sent": recent}
