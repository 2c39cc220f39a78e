"""Deterministic completions cut to an exact token budget.

The same request yields the same text, and ``count_text(text, model)`` equals the completion
tokens the fake reports, to the token: the gateway recounts with ``schemas.tokens`` when the
upstream omits usage, and the tests compare totals exactly. Text is built only from words that
are a single token in the model's encoding (with and without a leading space, lower and
capitalised) plus ".", so every cut lands on a word boundary that re-encodes identically; the
result is still verified with ``count_text`` and regenerated in the rare case it would not.
"""

from __future__ import annotations

import hashlib
import random
from functools import cache, lru_cache
from typing import Any

import orjson

from schemas.tokens import count_text, encoding_for_model, get_encoding

_CANDIDATES = """
the a an and or but so of to in on at by for with from about over under after before every
each some many few most all other same new old good great small large long short high low
early late first last next open clear quiet simple careful steady exact real time day week
year people way work part place case point group number world life hand system program
question answer request reply stream record report model price cost token word line page
book story idea plan note list table data value event order team city water light sound road
river field garden house room door window music is was are were has have had will can could
would should may might must does did make take give find keep tell ask show call try move
play run read write send hold bring begin turn start help change follow learn build grow
stand feel think know see look come go say get use want need seem leave put mean become very
more less just only also still even well then now here there often never always again
together today quickly slowly finally
"""
MAX_SENTENCE_WORDS = 14


@cache
def _vocabulary(encoding_name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(words, sentence starters) that are one token however they appear in the text."""
    enc = get_encoding(encoding_name)

    def single(piece: str) -> bool:
        return len(enc.encode(piece, disallowed_special=())) == 1

    words = tuple(w for w in _CANDIDATES.split() if single(" " + w))
    starters = tuple(
        w.capitalize() for w in words if single(w.capitalize()) and single(" " + w.capitalize())
    )
    return words, starters


def warm_up(models: tuple[str, ...]) -> None:
    """Load each model's encoding and vocabulary now, not on the first request."""
    for model in models:
        _vocabulary(encoding_for_model(model).name)


def request_key(messages: Any, seed: Any, index: int) -> bytes:
    """A stable digest of what the completion depends on (messages, seed, choice index)."""
    material = orjson.dumps([messages, seed, index], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(material, digest_size=16).digest()


def _compose(
    rng: random.Random, words: tuple[str, ...], starters: tuple[str, ...], n: int, full_stop: bool
) -> str:
    """``n`` one-token pieces: sentences of random words; a final "." when ``full_stop``."""
    parts: list[str] = []
    left = 0  # words still to go in the current sentence
    for i in range(n):
        if left == 0:
            parts.append((" " if i else "") + rng.choice(starters))
            left = rng.randint(4, MAX_SENTENCE_WORDS) - 1
        elif left == 1 or (full_stop and i == n - 1):
            parts.append(".")
            left = 0
        else:
            parts.append(" " + rng.choice(words))
            left -= 1
    return "".join(parts)


CACHED_UP_TO = 4096  # tokens; longer completions are rebuilt rather than kept in memory


def completion(model: str, key: bytes, tokens: int, full_stop: bool = True) -> str:
    """Exactly ``tokens`` tokens of ``model``'s encoding; ``full_stop``: end a sentence."""
    if tokens <= CACHED_UP_TO:
        return _cached_completion(model, key, tokens, full_stop)
    return _completion(model, key, tokens, full_stop)


@lru_cache(maxsize=2048)
def _cached_completion(model: str, key: bytes, tokens: int, full_stop: bool) -> str:
    return _completion(model, key, tokens, full_stop)


def _completion(model: str, key: bytes, tokens: int, full_stop: bool) -> str:
    if tokens <= 0:
        return ""
    words, starters = _vocabulary(encoding_for_model(model).name)
    for attempt in range(8):
        rng = random.Random(int.from_bytes(key, "big") + attempt)
        text = _compose(rng, words, starters, tokens, full_stop)
        if count_text(text, model) == tokens:
            return text
    raise RuntimeError(f"could not compose {tokens} tokens for {model}")  # pragma: no cover


def pieces(model: str, text: str) -> list[str]:
    """The text split at its token boundaries: one streamed delta per token."""
    encoding = encoding_for_model(model)
    return [encoding.decode([t]) for t in encoding.encode(text, disallowed_special=())]


def apply_stop(text: str, stop: str | list[str] | None) -> tuple[str, bool]:
    """Cut before the first stop sequence, as OpenAI does (the sequence is not returned)."""
    sequences = [stop] if isinstance(stop, str) else (stop or [])
    cuts = [text.find(s) for s in sequences if s and s in text]
    if not cuts:
        return text, False
    return text[: min(cuts)], True
