"""Every replica's in-memory copy of the gateway keys created through the admin API.

A ``TopicFollower`` reads the one partition of ``tollgate.keys`` from the beginning,
applies each record, and keeps following it:

- ``key.upserted`` sets a key (sha256 → ``Principal``, key_id → the event);
- ``key.revoked``, or a tombstone (null value) for a key_id, removes it.

``caught_up`` is set once the records present at start are applied: the ingress reports
ready only then, so a key created before it started works on its first request. When Kafka
goes away the keys already read keep working; the consumer reconnects and resumes at the
next offset. Static keys from the config are not here: ``KeyStore`` checks them first.
"""

from __future__ import annotations

import logging

from aiokafka import ConsumerRecord

from ingress.auth import Principal
from ingress.topic_follower import TopicFollower
from schemas.events import EventDecodeError, KeyRevoked, KeyUpserted, decode
from schemas.topics import KEYS

log = logging.getLogger("tollgate.ingress.key_registry")


def principal_of(key: KeyUpserted) -> Principal:
    return Principal(
        tenant=key.tenant,
        key_id=key.key_id,
        team=key.team,
        user=key.user,
        org=key.org,
        models=frozenset(key.models),
        expires_at=key.expires_at,
    )


class KeyRegistry(TopicFollower):
    def __init__(self, bootstrap_servers: str, topic: str = KEYS.name) -> None:
        super().__init__(bootstrap_servers, topic)
        self._by_digest: dict[str, Principal] = {}
        self._by_id: dict[str, KeyUpserted] = {}

    # -- reading (O(1), no I/O) -----------------------------------------------------------

    def lookup(self, digest: str) -> Principal | None:
        return self._by_digest.get(digest)

    def get(self, key_id: str) -> KeyUpserted | None:
        return self._by_id.get(key_id)

    def all_keys(self) -> list[KeyUpserted]:
        return sorted(self._by_id.values(), key=lambda k: (k.created_at, k.key_id))

    # -- following ------------------------------------------------------------------------

    def on_caught_up(self) -> None:
        log.info("%d gateway keys read from %s", len(self._by_id), self.topic)

    def apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:  # a tombstone
            if record.key:
                self._remove(record.key.decode(errors="replace"))
            return
        try:
            event = decode(record.value)
        except EventDecodeError as exc:
            log.error("%s offset %d skipped: %s", self.topic, record.offset, exc)
            return
        if isinstance(event, KeyUpserted):
            self._remove(event.key_id)
            self._by_id[event.key_id] = event
            self._by_digest[event.key_sha256] = principal_of(event)
        elif isinstance(event, KeyRevoked):
            self._remove(event.key_id)
        else:
            log.error("%s offset %d: unexpected %s skipped", self.topic, record.offset, event.TYPE)

    def _remove(self, key_id: str) -> None:
        old = self._by_id.pop(key_id, None)
        if old is not None:
            self._by_digest.pop(old.key_sha256, None)
