"""One real Kafka broker (KRaft, from the Maven jars) for the whole test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.kafka.broker import LocalKafka
from schemas.tokens import install_offline_encodings
from tests.harness import running_broker


@pytest.fixture(scope="session", autouse=True)
def _offline_tokenizer() -> None:
    install_offline_encodings()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    with running_broker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker
