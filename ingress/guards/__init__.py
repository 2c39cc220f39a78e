"""Inline guardrails: PII and secrets redacted, blocked or flagged before a request leaves,
prompt injections scored, answers checked (JSON and streams). See ``inline`` for the
request side and ``output_filter`` for the answer side; ``schemas.guards_config`` for
the policy."""

from ingress.guards.inline import InlineGuard, Inspection
from ingress.guards.output_filter import OutputBlocked, OutputGuard, StreamFilter, event_outputs

__all__ = [
    "InlineGuard",
    "Inspection",
    "OutputBlocked",
    "OutputGuard",
    "StreamFilter",
    "event_outputs",
]
