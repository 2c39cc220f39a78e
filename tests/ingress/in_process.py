"""The ingress app in process against the real fake upstream, with no Kafka: events are
captured instead of published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from infra.fake_upstream.server import BackgroundFakeUpstream
from ingress.app import create_app
from schemas.events import Event
from tests.harness import free_port, write_config


def app_capturing_events(
    home: Path, fake: BackgroundFakeUpstream, **sections: Any
) -> tuple[FastAPI, list[Event]]:
    """Every model served by ``fake``; ``sections`` added to the config."""
    config, _ = write_config(
        home,
        f"127.0.0.1:{free_port()}",
        providers={"fake": {"kind": "openai", "base_url": fake.base_url, "api_key": "k"}},
        deployments=[{"model": "*", "provider": "fake"}],
        **sections,
    )
    app = create_app(config)
    events: list[Event] = []
    app.state.publisher.publish = lambda topic, event, *a, **k: events.append(event)
    return app, events
