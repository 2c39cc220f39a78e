"""The alerting agent: watches the meter states on ``tollgate.admission`` and raises alerts.

Budgets, spend and provider health are metered per partition of the request log; only the
sum of the shares says whether a budget crossed 80% or a provider is failing. The one
partition of ``tollgate.admission`` carries every share, so this agent keeps the latest
share of each meter (``admission-view``) and what already fired (``alerts-fired``), both
changelog-backed, and sends each alert once to ``tollgate.alerts``.
"""

from __future__ import annotations

from typing import Any

import faust

from processors.alerts import rules
from processors.alerts.rules import Fired
from schemas.codec import EVENT_CODEC
from schemas.events import AlertRaised, MeterState, from_dict
from schemas.limits_config import AlertSettings, BudgetSettings
from schemas.meters import rule_name
from schemas.topics import ADMISSION, ALERTS, REQUESTS


class Alerter:
    def __init__(
        self, view: Any, fired: Any, budgets: tuple[BudgetSettings, ...], settings: AlertSettings
    ) -> None:
        self.view = view
        self.fired = fired
        self.budgets = {b.name: b for b in budgets}
        self.settings = settings

    def on_state(self, state: MeterState) -> list[AlertRaised]:
        self.view[f"{state.meter}#{state.partition}"] = state.to_dict()
        shares = self._shares(state)
        before: Fired = dict(self.fired.get(state.meter) or {})
        alerts: list[AlertRaised] = []
        after = before
        if state.kind == "budget":
            budget = self.budgets.get(rule_name(state.meter))
            if budget is not None:
                alerts, after = rules.budget_alerts(budget, state.meter, shares, before)
        elif state.kind == "spend" and self.settings.spend_spike is not None:
            tenant = state.meter.split(":", 2)[2]
            alerts, after = rules.spend_spike(self.settings.spend_spike, tenant, shares, before)
        elif state.kind == "provider" and self.settings.provider_health is not None:
            provider = state.meter.split(":", 2)[2]
            alerts, after = rules.provider_health(
                self.settings.provider_health, provider, shares, before
            )
        if after != before:
            self.fired[state.meter] = after
        return alerts

    def _shares(self, state: MeterState) -> list[MeterState]:
        shares = [state]
        for partition in range(REQUESTS.partitions):
            if partition == state.partition:
                continue
            raw = self.view.get(f"{state.meter}#{partition}")
            if raw:
                share = from_dict(raw)
                assert isinstance(share, MeterState)
                shares.append(share)
        return shares


def register(app: faust.App, budgets: tuple[BudgetSettings, ...], settings: AlertSettings) -> None:
    admission = app.topic(ADMISSION.name, partitions=1, value_serializer=EVENT_CODEC)
    alerts_topic = app.topic(ALERTS.name, partitions=1, value_serializer=EVENT_CODEC)
    alerter = Alerter(
        app.Table("admission-view", partitions=1),
        app.Table("alerts-fired", partitions=1),
        budgets,
        settings,
    )

    @app.agent(admission, name="alerts")
    async def alerting_agent(stream: faust.StreamT[Any]) -> None:
        async for value in stream:
            if isinstance(value, MeterState):
                for alert in alerter.on_state(value):
                    await alerts_topic.send(key=alert.subject.encode(), value=alert)
