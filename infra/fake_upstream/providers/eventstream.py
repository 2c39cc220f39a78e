"""AWS event-stream framing (``application/vnd.amazon.eventstream``), as Bedrock streams.

Each message: a 12-byte prelude (total length, headers length, CRC32 of those 8 bytes), the
headers (name length, name, type 7 = string, value length, value), the payload, and a CRC32
of everything before it. Events carry ``:event-type``, ``:content-type`` and
``:message-type: event``; errors inside a stream are ``:message-type: exception``.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import orjson

STRING = 7


def _headers(headers: dict[str, str]) -> bytes:
    out = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", STRING, len(raw_value)) + raw_value
    return out


def message(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = _headers(headers)
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    """One event; like AWS, the payload carries a ``p`` padding field clients ignore."""
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return message(headers, orjson.dumps({**payload, "p": "abcdefghijklmnopqrstuvwxyzABCDEF"}))


def exception(exception_type: str, text: str) -> bytes:
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return message(headers, orjson.dumps({"message": text}))
