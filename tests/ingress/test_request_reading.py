"""How the gateway reads a request: headers once, the body straight from the ASGI messages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.requests import Request
from starlette.types import Message, Receive

from ingress.errors import ClientClosedError, PayloadTooLargeError
from ingress.gateway import header_map, read_body


def _receiver(messages: list[Message]) -> tuple[Iterator[Message], Receive]:
    pending = iter(messages)

    async def receive() -> Message:
        return next(pending)

    return pending, receive


async def test_a_body_in_several_messages_is_joined() -> None:
    _, receive = _receiver(
        [
            {"type": "http.request", "body": b'{"a": ', "more_body": True},
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": b"1}", "more_body": False},
        ]
    )
    assert await read_body(receive, None, 100) == b'{"a": 1}'


async def test_a_body_past_the_limit_is_refused_declared_or_not() -> None:
    with pytest.raises(PayloadTooLargeError, match="101 bytes exceeds the 100-byte limit"):
        await read_body(_receiver([])[1], "101", 100)
    _, receive = _receiver(
        [
            {"type": "http.request", "body": b"x" * 60, "more_body": True},
            {"type": "http.request", "body": b"x" * 60, "more_body": False},
        ]
    )
    with pytest.raises(PayloadTooLargeError, match="exceeds the 100-byte limit"):
        await read_body(receive, None, 100)


async def test_a_client_leaving_mid_body_is_a_client_closed_error() -> None:
    pending, receive = _receiver(
        [{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}]
    )
    with pytest.raises(ClientClosedError, match="left while sending the request body"):
        await read_body(receive, None, 100)
    assert next(pending, None) is None


def test_headers_are_one_dict_where_the_first_of_a_repeated_name_wins() -> None:
    scope = {
        "type": "http",
        "headers": [(b"x-request-id", b"first"), (b"x-request-id", b"second"), (b"a", b"\xe9")],
    }
    request = Request(scope)
    assert header_map(request) == {"x-request-id": "first", "a": "é"}
    assert header_map(request)["x-request-id"] == request.headers["x-request-id"]
