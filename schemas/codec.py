"""The one orjson codec for events, registered with Faust under ``tollgate-event``.

Faust topics declared with ``value_serializer=EVENT_CODEC`` hand agents typed events and
accept them on ``send``; the bytes are exactly what the ingress and the sinks write.
"""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from schemas.events import Event, decode

EVENT_CODEC = "tollgate-event"


class EventCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, Event):
            return obj.encode()
        raise TypeError(f"{EVENT_CODEC} encodes schemas.events.Event, not {type(obj).__name__}")

    def _loads(self, s: bytes) -> Any:
        return decode(s)


def register() -> None:
    """Idempotent; call before declaring topics."""
    codecs.register(EVENT_CODEC, EventCodec())
