"""The inline guard on a request: detect, decide, redact; what goes upstream and what the
audit log keeps.

Per text of the canonical body: PII and secret spans (``scan``); over what the caller
wrote (user and tool messages; system prompts are the developer's own): the injection score.
The strongest action wins: block > redact > warn > allow. Entities to redact (and, on a
blocked request, to block) become placeholders in the forwarded body; the stored body
follows the body policy (``full``: as forwarded; ``redacted``: every entity found replaced;
``none``: empty).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ingress.guards import body_text
from ingress.guards.injection import score
from ingress.guards.patterns import Span
from ingress.guards.policy import SEVERITY, Policy, PolicyBook
from ingress.guards.redaction import Redactor
from ingress.guards.scan import find_entities
from schemas.guards_config import GuardSettings

_SAYS_WHO = ("user", "tool", "function")
_NAMES = {
    "EMAIL": "e-mail address",
    "PHONE": "phone number",
    "SSN": "US social security number",
    "CREDIT_CARD": "payment card number",
    "IBAN": "IBAN",
    "IP_ADDRESS": "IP address",
    "SECRET": "secret (API key, token or private key)",
}


@dataclass(slots=True)
class Inspection:
    policy: Policy
    forward: dict[str, Any]
    stored: dict[str, Any]
    body_kept: str
    verdict: dict[str, Any]
    redactor: Redactor
    blocked: str | None = None
    """The client-facing reason when the request must not go out."""
    output_verdict: dict[str, Any] | None = field(default=None)
    """Set by the output filter when it ran over the answer."""


def _block_message(types: list[str], injection: tuple[float, float, tuple[str, ...]] | None) -> str:
    found = []
    if types:
        found.append(", ".join(f"{_NAMES.get(t, t)} ({t})" for t in types))
    if injection is not None:
        value, threshold, signals = injection
        found.append(
            f"a likely prompt injection (score {value:.2f} >= {threshold:.2f}: "
            f"{', '.join(signals)})"
        )
    return (
        f"request blocked by the gateway's content policy: it contains {' and '.join(found)}. "
        "Remove or mask that content and retry; if this is legitimate, ask your Tollgate "
        "admin to change the guard policy for your tenant or model."
    )


class InlineGuard:
    def __init__(self, settings: GuardSettings) -> None:
        self.book = PolicyBook(settings)

    def inspect(self, tenant: str, model: str, body: dict[str, Any]) -> Inspection | None:
        policy = self.book.for_call(tenant, model)
        if policy is None:
            return None
        found = body_text.texts(body)
        spans: list[list[Span]] = [find_entities(text) for _, _, text in found]
        counts = Counter(s.type for per in spans for s in per if s.type in policy.counted)
        rules = policy.rules
        injection = score(text for role, _, text in found if role in _SAYS_WHO)
        action = "allow"
        if counts:
            action = max((rules.action_for(t) for t in counts), key=SEVERITY.__getitem__)
        over = injection.score >= rules.injection.threshold and injection.score > 0
        if over and SEVERITY[rules.injection.action] > SEVERITY[action]:
            action = rules.injection.action
        verdict = {
            "action": action,
            "entities": dict(counts),
            "injection_score": injection.score,
        }
        redactor = Redactor()
        if not any(spans):
            kept = "none" if rules.body == "none" else "full"
            stored = {} if kept == "none" else body
            inspection = Inspection(policy, body, stored, kept, verdict, redactor)
        else:
            inspection = self._redacted(policy, body, found, spans, verdict, redactor)
        if action == "block":
            blocked = sorted(t for t in counts if t in policy.blocked)
            inj = (injection.score, rules.injection.threshold, injection.signals)
            inspection.blocked = _block_message(
                blocked, inj if over and rules.injection.action == "block" else None
            )
        return inspection

    @staticmethod
    def _redacted(  # noqa: PLR0917
        policy: Policy,
        body: dict[str, Any],
        found: list[tuple[str, body_text.Path, str]],
        spans: list[list[Span]],
        verdict: dict[str, Any],
        redactor: Redactor,
    ) -> Inspection:
        redacted = policy.redacted
        forward = body
        if any(s.type in redacted for per in spans for s in per):
            forward = body_text.rewrite(
                body, found, lambda i, text: redactor.redact(text, spans[i], redacted)
            )
        rules = policy.rules
        if rules.body == "none":
            return Inspection(policy, forward, {}, "none", verdict, redactor)
        if rules.body == "redacted":
            every = {s.type for per in spans for s in per}
            stored = body_text.rewrite(
                body, found, lambda i, text: redactor.redact(text, spans[i], every)
            )
            return Inspection(policy, forward, stored, "redacted", verdict, redactor)
        kept = "full" if forward is body else "redacted"
        return Inspection(policy, forward, forward, kept, verdict, redactor)
