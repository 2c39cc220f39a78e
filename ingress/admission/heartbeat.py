"""This replica's heartbeat on ``tollgate.admission``, so its peers know how many share a
limit (see ``controller``). One per process: each ingress worker is its own replica."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from ingress.publisher import EventPublisher
from schemas.events import ReplicaAlive
from schemas.topics import ADMISSION

INTERVAL_S = 1.0


class Heartbeat:
    def __init__(self, publisher: EventPublisher, interval_s: float = INTERVAL_S) -> None:
        self.replica = uuid.uuid4().hex[:16]
        self.publisher = publisher
        self.interval_s = interval_s
        self.task: asyncio.Task[None] | None = None

    def beat(self) -> None:
        alive = ReplicaAlive(
            request_id="",
            tenant="",
            replica=self.replica,
            interval_ms=int(self.interval_s * 1000),
        )
        self.publisher.publish(ADMISSION.name, alive, key=f"replica:{self.replica}".encode())

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run_forever(), name="replica-heartbeat")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def _run_forever(self) -> None:
        while True:
            self.beat()
            await asyncio.sleep(self.interval_s)
