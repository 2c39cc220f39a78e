from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from schemas.events import (
    Event,
    EventDecodeError,
    KeyRevoked,
    KeyUpserted,
    RequestReceived,
    ResponseCompleted,
    UnknownEventVersionError,
    Usage,
    decode,
    decode_as,
)
from schemas.topics import ALL_TOPICS, KEYS


def _request() -> RequestReceived:
    return RequestReceived(
        request_id="r-1",
        tenant="acme",
        key_id="k1",
        endpoint="/v1/chat/completions",
        model="gpt-4o",
        body={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    )


def test_round_trip_keeps_every_field() -> None:
    event = _request()
    assert decode(event.encode()) == event
    data = orjson.loads(event.encode())
    assert data["type"] == "request.received" and data["v"] == 1
    assert {"id", "ts", "request_id", "tenant"} <= data.keys()


def _every_event_type() -> list[type[Event]]:
    found, todo = [], [Event]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


@pytest.mark.parametrize("cls", _every_event_type(), ids=lambda c: c.TYPE)
def test_every_event_type_encodes_its_fields_and_type_tag(cls: type[Event]) -> None:
    # encode() splices the type onto orjson's native dataclass output: the same JSON object
    required: dict[str, Any] = {
        f.name: f"{f.name}-value"
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    event = cls(**required)
    assert orjson.loads(event.encode()) == event.to_dict()
    assert event.to_dict()["type"] == cls.TYPE
    assert set(event.to_dict()) == {f.name for f in dataclasses.fields(cls)} | {"type"}


def test_ids_are_time_ordered_uuid7() -> None:
    first, second = _request(), _request()
    assert first.id != second.id
    assert first.id[14] == "7"  # version nibble
    assert first.id <= second.id


def test_unknown_fields_are_tolerated() -> None:
    data = orjson.loads(_request().encode()) | {"added_in_a_later_minor": [1, 2]}
    assert decode(orjson.dumps(data)) == _request().__class__(
        **{k: v for k, v in data.items() if k not in ("type", "added_in_a_later_minor")}
    )


def test_unknown_version_is_rejected_naming_the_event() -> None:
    data = orjson.loads(_request().encode()) | {"v": 2}
    with pytest.raises(UnknownEventVersionError) as info:
        decode(orjson.dumps(data))
    assert "request.received" in str(info.value) and data["id"] in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[1,2]", b'{"v":1,"type":"nope","id":"x"}', b'{"v":1,"type":"usage.recorded"}'],
)
def test_garbage_raises_decode_error(raw: bytes) -> None:
    with pytest.raises(EventDecodeError):
        decode(raw)


def test_decode_as_checks_the_type() -> None:
    with pytest.raises(EventDecodeError):
        decode_as(_request().encode(), ResponseCompleted)


def test_usage_from_openai_reads_details() -> None:
    usage = Usage.from_openai(
        {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 8},
        }
    )
    assert (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        usage.reasoning_tokens,
        usage.total_tokens,
    ) == (100, 20, 64, 8, 120)


def test_key_events_round_trip_and_carry_only_the_hash() -> None:
    upserted = KeyUpserted(
        request_id="admin-1",
        tenant="acme",
        key_id="0123456789abcdef",
        key_sha256="0123456789abcdef" * 4,
        team="search",
        models=["gpt-4o-mini"],
        name="ci",
        expires_at=2_000_000_000_000,
    )
    assert decode(upserted.encode()) == upserted
    assert orjson.loads(upserted.encode())["type"] == "key.upserted"
    revoked = KeyRevoked(request_id="admin-2", tenant="acme", key_id=upserted.key_id)
    assert decode_as(revoked.encode(), KeyRevoked) == revoked


def test_keys_topic_is_compacted_and_keyed_by_key_id() -> None:
    assert KEYS.name in {t.name for t in ALL_TOPICS}
    assert KEYS.partitions == 1 and KEYS.key == "key_id"
    assert KEYS.configs() == {"cleanup.policy": "compact"}
