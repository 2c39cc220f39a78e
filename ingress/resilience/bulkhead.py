"""A bulkhead per deployment: at most ``max_concurrency`` calls in flight, at most
``queue_limit`` waiting for a slot (each for at most ``queue_timeout_s``); beyond that the
caller gets a 503 at once instead of piling onto a saturated upstream."""

from __future__ import annotations

import asyncio

from ingress.errors import OverloadedError


class Bulkhead:
    def __init__(self, name: str, max_concurrency: int, queue_limit: int, queue_timeout_s: float):
        self.name = name
        self.max_concurrency = max_concurrency
        self.queue_limit = queue_limit
        self.queue_timeout_s = queue_timeout_s
        self._slots = asyncio.Semaphore(max_concurrency)
        self.in_flight = 0
        self.waiting = 0

    def slot(self) -> Bulkhead:
        """``async with bulkhead.slot():`` holds one slot for the block. The bulkhead is its
        own context manager (it keeps nothing per entry): a generator-based one cost a few
        µs on every call."""
        return self

    async def __aenter__(self) -> None:
        if self._slots.locked():
            if self.waiting >= self.queue_limit:
                raise OverloadedError(
                    f"deployment {self.name} is at capacity ({self.max_concurrency} in flight, "
                    f"{self.waiting} queued); retry shortly"
                )
            self.waiting += 1
            try:
                async with asyncio.timeout(self.queue_timeout_s):
                    await self._slots.acquire()
            except TimeoutError as exc:
                raise OverloadedError(
                    f"deployment {self.name} had no free slot within {self.queue_timeout_s:g} s;"
                    " retry shortly"
                ) from exc
            finally:
                self.waiting -= 1
        else:
            await self._slots.acquire()
        self.in_flight += 1

    async def __aexit__(self, *exc_info: object) -> None:
        self.in_flight -= 1
        self._slots.release()
