"""One real Kafka broker (KRaft, from the Maven jars) for the whole test session."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.kafka.broker import BrokerSettings, LocalKafka
from infra.topics import ensure_topics
from schemas.tokens import install_offline_encodings
from tests.harness import free_port


@pytest.fixture(scope="session", autouse=True)
def _offline_tokenizer() -> None:
    install_offline_encodings()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    home: Path = tmp_path_factory.mktemp("kafka")
    broker = LocalKafka(BrokerSettings(home=home, port=free_port(), controller_port=free_port()))
    broker.start()
    asyncio.run(ensure_topics(broker.bootstrap_servers))
    try:
        yield broker
    finally:
        broker.stop()
