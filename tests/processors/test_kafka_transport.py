"""The worker's transport: the configured fetch wait reaches aiokafka, and a fetch is
delivered in order until a rebalance cuts it off."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faust
import pytest

from processors.app import create_app
from processors.kafka_transport import Transport
from tests.harness import write_config


@dataclass
class _Message:
    topic: str
    partition: int
    offset: int
    key: bytes = b"k"


def _app(tmp_path: Path, **processors: object) -> faust.App:
    config, _ = write_config(tmp_path, "127.0.0.1:1", processors=processors)
    return create_app(config)


async def test_the_configured_fetch_wait_reaches_the_aiokafka_consumer(tmp_path: Path) -> None:
    app = _app(tmp_path, fetch_max_wait_ms=35)
    assert isinstance(app.transport, Transport)
    thread = app.consumer._thread  # type: ignore[attr-defined]
    consumer = thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == 35  # what AIOKafkaConsumer.start gives its fetcher


async def test_a_fetch_is_delivered_in_order_and_marks_what_was_read(tmp_path: Path) -> None:
    app = _app(tmp_path)
    consumer = app.consumer
    tp = faust.types.TP("tollgate.requests", 2)
    delivered: list[int] = []

    async def callback(message: _Message) -> None:
        delivered.append(message.offset)

    consumer.callback = callback  # type: ignore[attr-defined]
    consumer._read_offset[tp] = 9  # type: ignore[attr-defined]
    fetched = [(tp, _Message(tp.topic, 2, offset)) for offset in (8, 10, 11, 12)]
    await consumer._deliver(fetched, app.consumer_generation_id)  # type: ignore[attr-defined]
    assert delivered == [10, 11, 12]  # 8 is behind what was read: dropped, as Faust does
    assert consumer._read_offset[tp] == 12  # type: ignore[attr-defined]


async def test_a_rebalance_mid_fetch_leaves_the_rest_unread(tmp_path: Path) -> None:
    app = _app(tmp_path)
    consumer = app.consumer
    tp = faust.types.TP("tollgate.requests", 0)
    delivered: list[int] = []

    async def callback(message: _Message) -> None:
        delivered.append(message.offset)
        if message.offset == 1:
            app.consumer_generation_id += 1  # a rebalance happened meanwhile

    consumer.callback = callback  # type: ignore[attr-defined]
    fetched = [(tp, _Message(tp.topic, 0, offset)) for offset in range(5)]
    await consumer._deliver(fetched, app.consumer_generation_id)  # type: ignore[attr-defined]
    assert delivered == [0, 1]
    assert consumer._read_offset[tp] == 1  # type: ignore[attr-defined]  # 2.. fetched again


@pytest.mark.parametrize("value", [0, 1501])
def test_the_fetch_wait_is_bounded(tmp_path: Path, value: int) -> None:
    with pytest.raises(Exception, match="fetch_max_wait_ms"):
        write_config(tmp_path, "127.0.0.1:1", processors={"fetch_max_wait_ms": value})
