"""One alert to one webhook: the payload, and the retries that get it there.

The payload is Slack's incoming-webhook shape (``text``, one line) plus the alert's fields
under ``alert``, so a Slack channel and a generic receiver read the same POST. A delivery
is retried on connection errors, timeouts, 408, 429 and 5xx, with exponential backoff and
full jitter, or after the receiver's ``Retry-After`` (capped); any other answer is final.
Webhook URLs can be secrets themselves (Slack puts the token in the path), so logs name a
webhook by its index and host, and header values never reach a log line.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from schemas.events import AlertRaised
from schemas.limits_config import WebhookSettings

log = logging.getLogger("tollgate.sink.alerts")

_RETRIABLE_STATUS = frozenset({408, 429})


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    GAVE_UP = "gave_up"
    STOPPED = "stopped"
    """Shutdown came first: not delivered, not given up; the record is read again later."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff between tries; ``max_attempts`` and the timeout come from each webhook."""

    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 60.0
    """A longer Retry-After is shortened to this, so one receiver cannot stall the queue."""

    def delay(self, retry: int, retry_after_s: float | None) -> float:
        """Seconds before retry number ``retry`` (1-based)."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_retry_after_s)
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (retry - 1))
        return random.uniform(0, ceiling)


@dataclass(frozen=True, slots=True)
class Webhook:
    """A configured webhook and the name logs may use for it (never its full URL)."""

    settings: WebhookSettings
    index: int

    @property
    def name(self) -> str:
        return f"alerts.webhooks.{self.index} ({self.settings.url.host})"

    def wants(self, alert: AlertRaised) -> bool:
        return not self.settings.kinds or alert.kind in self.settings.kinds

    def scrub(self, text: str) -> str:
        """``text`` without the URL's path or query and without any header value."""
        url = self.settings.url
        secrets = [str(url), str(url).rstrip("/"), url.path if url.path != "/" else None]
        secrets += [url.query, *(v.get_secret_value() for v in self.settings.headers.values())]
        for secret in sorted(filter(None, secrets), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(alert: AlertRaised) -> dict[str, Any]:
    """Slack reads ``text``; other receivers read ``alert`` (every field of the event)."""
    line = f"[{str(alert.severity).upper()}] {alert.kind} {alert.subject}: {alert.message}"
    return {"text": _slack_escape(" ".join(line.split())), "alert": alert.to_dict()}


def retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


async def deliver(
    session: aiohttp.ClientSession,
    hook: Webhook,
    alert: AlertRaised,
    body: bytes,
    *,
    policy: RetryPolicy,
    stop: asyncio.Event,
) -> Outcome:
    """POST ``body`` (``alert``'s payload, encoded once for every webhook) to ``hook``
    until it is accepted (2xx), refused for good, or the attempts run out; a set ``stop``
    ends the waiting between tries."""
    headers = {k: v.get_secret_value() for k, v in hook.settings.headers.items()}
    headers["content-type"] = "application/json"
    timeout = aiohttp.ClientTimeout(total=hook.settings.timeout_s)
    attempts = hook.settings.max_attempts
    last = ""
    for attempt in range(1, attempts + 1):
        wait_hint: float | None = None
        try:
            async with session.post(
                str(hook.settings.url),
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,  # a redirect would carry the headers elsewhere
            ) as response:
                if 200 <= response.status < 300:
                    log.info("alert %s (%s) delivered to %s", alert.id, alert.kind, hook.name)
                    return Outcome.DELIVERED
                text = (await response.text(errors="replace"))[:200]
                last = f"HTTP {response.status}: {hook.scrub(text)!r}"
                if response.status not in _RETRIABLE_STATUS and response.status < 500:
                    log.error(
                        "alert %s (%s) refused by %s with %s; not retried. Check the webhook's "
                        "URL and headers in the config (a 404 or 403 often means the webhook "
                        "was revoked).",
                        alert.id,
                        alert.kind,
                        hook.name,
                        last,
                    )
                    return Outcome.GAVE_UP
                wait_hint = retry_after_s(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            last = f"{type(exc).__name__}: {hook.scrub(str(exc))}"
        if attempt == attempts:
            break
        pause = policy.delay(attempt, wait_hint)
        log.warning(
            "alert %s to %s failed (try %d of %d, %s); retrying in %.2f s",
            alert.id,
            hook.name,
            attempt,
            attempts,
            last,
            pause,
        )
        if await _stopped_within(stop, pause):
            return Outcome.STOPPED
    log.error(
        "giving up on alert %s (%s, %s) to %s after %d tries; last: %s. The alert stays on "
        "the alerts topic (30 days); check that the receiver is up and reachable "
        "from the sink, or raise max_attempts/timeout_s for this webhook.",
        alert.id,
        alert.kind,
        alert.subject,
        hook.name,
        attempts,
        last,
    )
    return Outcome.GAVE_UP


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
