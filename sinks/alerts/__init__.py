"""Alerts from ``tollgate.alerts`` to webhooks (Slack-compatible JSON), with retries."""
