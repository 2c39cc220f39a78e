"""Shared test helpers: free ports, configs on disk, a real stack of stage processes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from infra.kafka.broker import BrokerSettings, LocalKafka
from infra.stack import Stack
from infra.topics import ensure_topics
from schemas.config import TollgateConfig, load_config

TEST_KEY = "tg-test-key"


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port, never the same twice in this process: a config takes several
    in a row, and the kernel may hand a just-closed port out again."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def write_config(
    home: Path, bootstrap_servers: str, **sections: Any
) -> tuple[TollgateConfig, Path]:
    """A config for one isolated stack: own home, ports, chDB path, group and app ids."""
    home.mkdir(parents=True, exist_ok=True)
    upstream_port = free_port()
    data: dict[str, Any] = {
        "home": str(home),
        "kafka": {"bootstrap_servers": bootstrap_servers, "embedded": False},
        "ingress": {"port": free_port()},
        "sink": {"query_port": free_port(), "group_id": f"sink-{home.name}", "batch_max_ms": 200},
        "processors": {"app_id": f"processors-{home.name}"},
        "fake_upstream": {"port": upstream_port},
        "keys": [
            {"key": TEST_KEY, "tenant": f"tenant-{home.name}", "team": "qa"},
            {"key": TEST_KEY + "-2", "tenant": f"other-{home.name}"},
        ],
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values} if isinstance(values, dict) else values
    path = home / "tollgate.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path, env={}), path


def start_stack(config: TollgateConfig, path: Path, with_upstream: bool = True) -> Stack:
    stack = Stack(config, path, with_upstream=with_upstream)
    try:
        stack.up()
    except BaseException:
        stack.down()
        raise
    return stack


@contextmanager
def running_broker(home: Path) -> Iterator[LocalKafka]:
    """A real broker on free loopback ports with the contract's topics; stopped on exit."""
    broker = LocalKafka(BrokerSettings(home=home, port=free_port(), controller_port=free_port()))
    try:
        broker.start()
        asyncio.run(ensure_topics(broker.bootstrap_servers))
        yield broker
    finally:
        broker.stop()
