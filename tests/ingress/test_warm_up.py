"""Before the first request the ingress loads what every request needs, and, when it owns
its process, moves that heap out of the collector's sight (full collections stalled the
event loop for 70-85 ms under load)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ingress.app import YOUNG_COLLECTION_EVERY, warm_up
from schemas.tokens import get_encoding


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    gc.unfreeze()
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def test_warm_up_loads_the_tokenizers_and_freezes_what_it_loaded() -> None:
    get_encoding.cache_clear()
    await warm_up([], freeze_heap=True)
    assert get_encoding.cache_info().currsize == 2
    frozen = gc.get_freeze_count()
    assert frozen > 1000
    assert len(gc.get_objects(generation=2)) < frozen  # the old generation is left small
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_EVERY  # a collection every ~50 requests


async def test_an_embedded_ingress_leaves_its_hosts_heap_alone() -> None:
    before = gc.get_threshold()
    await warm_up([], freeze_heap=False)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
