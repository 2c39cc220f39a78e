"""The embedded broker: its data survives a restart and a second start reuses it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from infra.kafka.broker import BrokerSettings, LocalKafka
from infra.topics import TopicMismatchError, ensure_topics
from schemas.topics import TopicSpec
from tests.harness import free_port
from tests.kafka_io import collect, produce

pytestmark = pytest.mark.integration


def test_data_survives_restart_and_second_start_reuses(tmp_path: Path) -> None:
    settings = BrokerSettings(home=tmp_path / "k", port=free_port(), controller_port=free_port())
    broker = LocalKafka(settings)
    spec = TopicSpec("persist.check", 2, retention_ms=3_600_000)
    try:
        broker.start()
        pid = broker.pid()
        meta = (broker.data_dir / "meta.properties").read_text()
        asyncio.run(ensure_topics(broker.bootstrap_servers, (spec,)))
        asyncio.run(produce(broker.bootstrap_servers, spec.name, [(b"k", b"kept across restarts")]))

        LocalKafka(settings).start()  # a second start finds the running broker
        assert broker.pid() == pid

        assert broker.stop()
        assert broker.pid() is None and not broker.stop()
        broker.start()
        assert broker.pid() != pid
        assert (broker.data_dir / "meta.properties").read_text() == meta  # not reformatted
        records = asyncio.run(
            collect(broker.bootstrap_servers, spec.name, lambda r: True, 1, linger=0)
        )
        assert [r.value for r in records] == [b"kept across restarts"]

        wrong = TopicSpec(spec.name, 3, retention_ms=3_600_000)
        with pytest.raises(TopicMismatchError, match="has 2 partitions"):
            asyncio.run(ensure_topics(broker.bootstrap_servers, (wrong,)))
    finally:
        broker.stop()
