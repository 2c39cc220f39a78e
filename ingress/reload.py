"""Config reload on change: watch the file, validate, swap the runtime; never drop requests.

A bad edit is logged with the validation message and the running config stays in place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from watchfiles import awatch

from schemas.config import ConfigError, TollgateConfig, load_config

log = logging.getLogger(__name__)


async def watch_config(path: Path, apply: Callable[[TollgateConfig], None]) -> None:
    async for _ in awatch(path, debounce=200, step=50):
        try:
            config = load_config(path)
        except ConfigError as exc:
            log.error("config change ignored, the running config stays:\n%s", exc)
            continue
        apply(config)
        log.warning("config reloaded from %s", path)
