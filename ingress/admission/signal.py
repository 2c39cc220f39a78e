"""A wake-up for requests waiting on the admission view: every waiter, at the next notice.

``asyncio.Event`` would need clearing between notices, and a waiter that comes in between
the set and the clear would not wait at all; here each notice ends one generation and the
next waiter starts another. Nothing is allocated while nobody waits.
"""

from __future__ import annotations

import asyncio
import contextlib


class Signal:
    def __init__(self) -> None:
        self._next: asyncio.Future[None] | None = None

    def notify(self) -> None:
        """Wakes everyone waiting now; runs on the loop the waiters wait on."""
        if self._next is not None:
            if not self._next.done():
                self._next.set_result(None)
            self._next = None

    async def wait(self, timeout_s: float) -> bool:
        """Until the next ``notify`` (True) or ``timeout_s`` (False)."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(self._next)
                return True
        return False
