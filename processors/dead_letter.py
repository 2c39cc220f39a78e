"""A Faust topic that sends undecodable messages to the dead-letter topic with the reason.

Faust acknowledges a message whose value fails to decode and calls
``on_value_decode_error``; without this the event would only reach a log line.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import Message

from schemas.topics import DEAD_LETTER

log = logging.getLogger("tollgate.processors")


class DeadLetteringTopic(faust.Topic):
    async def on_value_decode_error(self, exc: Exception, message: Message) -> None:
        log.error(
            "dead-lettering %s[%s]@%s: %s", message.topic, message.partition, message.offset, exc
        )
        headers: list[tuple[str, bytes]] = [
            ("tollgate-reason", str(exc).encode()[:1000]),
            ("tollgate-source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
        ]
        await self.app.producer.send(
            DEAD_LETTER.name, message.key, message.value, None, None, headers
        )


def dead_lettering_topic(app: faust.App, name: str, **kwargs: Any) -> faust.Topic:
    return DeadLetteringTopic(app, topics=[name], **kwargs)
