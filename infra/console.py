"""Progress lines for long-running commands: what is happening, and how long it took."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def step(message: str) -> Iterator[None]:
    """``==> message ...`` then ``ok (1.2 s)`` or the failure, so a slow step is never silent."""
    say(f"==> {message} ...")
    started = time.monotonic()
    try:
        yield
    except BaseException:
        say(f"    failed after {time.monotonic() - started:.1f} s")
        raise
    say(f"    ok ({time.monotonic() - started:.1f} s)")
