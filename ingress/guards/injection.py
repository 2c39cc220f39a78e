"""Prompt-injection heuristics: a score in 0..1 from phrase signals, not a model.

Four families: instruction override ("ignore all previous instructions"), system prompt
extraction ("print your system prompt"), role-play jailbreaks ("pretend you have no
restrictions", DAN) and encoded payloads (base64, hex or rot13 hiding one of those). Each
signal has a weight; the score is ``1 - Π(1 - w)`` over the signals found, so one strong
signal or several weak ones cross a threshold. A phrase needs its verb *and* its object:
"ignore the previous test failure" has no instruction to override.

A regex search costs tens of µs on a 2 KB prompt, so none scans the text: each signal
names the words its phrase starts with, and its pattern is matched only where one of them
occurs (the set of the text's words is built once).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ingress.guards.scan import one_byte_per_char
from ingress.guards.secrets import runs

_FILL = (
    r"(?:\s+(?:all|any|every|each|the|your|my|of|previous|prior|above|earlier|preceding|"
    r"foregoing|original|initial|existing|current|these|those|system|developer|safety|other|"
    r"old|given|such|that|this|and|guidelines,?))*"
)
_OBJECTS = (
    r"(?:instructions?|prompts?|rules|directives?|guidelines|guardrails|commands|context|"
    r"programming|constraints|restrictions|policies|directions|training|messages)\b"
)


@dataclass(frozen=True, slots=True)
class Signal:
    family: str
    weight: float
    anchors: frozenset[str]
    """Uncommon words every match contains: the pattern is tried only around them."""
    pattern: re.Pattern[str]
    around: tuple[int, int] | None = None
    """None: a match starts at the anchor; else (before, after): the characters around the
    anchor a match may span."""


def _signal(
    family: str, weight: float, anchors: str, pattern: str, around: tuple[int, int] | None = None
) -> Signal:
    return Signal(family, weight, frozenset(anchors.split()), re.compile(rf"\b{pattern}"), around)


_JAILBREAK_OBJECTS = (
    "restrictions rules limits limitations filters guidelines ethics morals censorship policy "
    "policies safety"
)
SIGNALS: tuple[Signal, ...] = (
    _signal(
        "override",
        0.9,
        "ignore ignoring disregard disregarding forget override bypass discard skip",
        rf"(?:ignor(?:e|ing)|disregard(?:ing)?|forget|override|bypass|discard|skip)\b{_FILL}"
        rf"\s+{_OBJECTS}",
    ),
    _signal(
        "override",
        0.8,
        "forget ignore disregard",
        r"(?:forget|ignore|disregard)\s+(?:everything|all(?: of it)?)\s+(?:you(?:'ve| have|"
        r" were)? (?:been told|told|learned|know)|above|before|prior|so far|previously|earlier)",
    ),
    _signal(
        "override",
        0.5,
        "instructions prompt",
        r"(?:new|updated|real|actual|true|revised)\s+(?:instructions|system prompt)",
        (24, 16),
    ),
    _signal(
        "override",
        0.75,
        "instructions rules prompt",
        r"new\s+(?:instructions|rules|system prompt)\s*:",
        (12, 16),
    ),
    _signal(
        "override",
        0.4,
        "now",
        r"from now on,?\s+(?:you|act|respond|answer|behave|your)",
        (8, 40),
    ),
    _signal(
        "override",
        0.6,
        "longer",
        r"you(?: are|'re) no longer (?:an? |bound|restricted|limited|required)",
        (16, 32),
    ),
    _signal(
        "extraction",
        0.85,
        "prompt prompts instructions instruction message rules",
        r"(?:reveal|show|print|repeat|output|display|leak|dump|share|give|tell|write out|"
        r"recite|spell out|paste|copy|what (?:is|are|was|were))\b(?:\s+(?:me|us))?"
        r"(?:\s+(?:your|the|its|all|of|full|entire|exact|complete|original|initial|hidden|"
        r"secret|verbatim|confidential|above|first|text|in))*\s+"
        r"(?:system\s+(?:prompt|message|instructions?)|(?:initial|original|hidden|secret|"
        r"developer|pre-?)\s*(?:prompt|instructions)|instructions\s+(?:you were given|above)|"
        r"prompt\s+(?:above|you were given)|rules you (?:were given|follow))",
        (120, 24),
    ),
    _signal(
        "extraction",
        0.8,
        "repeat",
        r"repeat\s+(?:the\s+)?(?:words|text|everything|all|content|lines?)\s+"
        r"(?:above|before|that came before|preceding)",
    ),
    _signal(
        "extraction",
        0.6,
        "told instructed",
        r"what (?:were|was) you (?:told|instructed|given)\b.{0,30}\b(?:before|start)",
        (24, 48),
    ),
    _signal("jailbreak", 0.9, "anything", r"do anything now\b", (4, 12)),
    _signal("jailbreak", 0.55, "jailbreak jailbroken jailbreaking", r"jailbr(?:eak|oken|eaking)\b"),
    _signal(
        "jailbreak",
        0.85,
        "mode",
        r"(?:dan|god|jailbreak|unrestricted|unfiltered|evil|chaos|sudo)\s+mode\b",
        (24, 4),
    ),
    _signal(
        "jailbreak",
        0.45,
        "mode",
        r"(?:you are|you're|enter|activate|switch to)\s+(?:now\s+)?(?:in\s+)?developer mode",
        (48, 4),
    ),
    _signal(
        "jailbreak",
        0.85,
        _JAILBREAK_OBJECTS,
        r"(?:pretend|imagine|act|behave|roleplay|role-play|play the role|you are)\b.{0,80}?"
        r"\b(?:no|without(?: any)?|free (?:of|from)|ignores?|not bound by|unbound by|zero)\s+"
        r"(?:\w+\s+)?(?:restrictions|rules|limits|limitations|filters|guidelines|ethics|"
        r"morals|censorship|content polic(?:y|ies)|safety)",
        (140, 4),
    ),
    _signal(
        "jailbreak",
        0.8,
        "freed liberated unchained jailbroken",
        r"you (?:are|have been) (?:now )?(?:freed|liberated|unchained|jailbroken)",
        (24, 4),
    ),
    _signal(
        "jailbreak",
        0.6,
        "ethical moral",
        r"(?:no|without any|free of all) (?:ethical|moral|content) "
        r"(?:guidelines|restrictions|filters|constraints|boundaries|limits)",
        (24, 48),
    ),
    _signal(
        "jailbreak",
        0.35,
        "character",
        r"(?:stay|remain|never break)\s+(?:in\s+)?character\b",
        (24, 2),
    ),
    _signal(
        "jailbreak",
        0.4,
        "refuse",
        r"(?:never refuse|cannot refuse|can't refuse|must not refuse|will not refuse)",
        (20, 2),
    ),
    _signal(
        "encoded",
        0.5,
        "decode decipher deobfuscate unscramble",
        r"(?:decode|decipher|deobfuscate|unscramble)\b.{0,80}?\b(?:follow|execute|obey|"
        r"do what it says|carry out|comply|act on)",
    ),
)
ANCHORS: frozenset[str] = frozenset().union(*(s.anchors for s in SIGNALS))
_PUNCT = str.maketrans({c: " " for c in "\"'.,;:!?()[]{}<>*`|/\\=+#~_"})
MAX_PLACES = 32
_ROT13_WORDS = frozenset(
    codecs.encode(w, "rot13")
    for w in [
        "ignore",
        "disregard",
        "instructions",
        "prompt",
        "previous",
        "system",
        "jailbreak",
        "pretend",
    ]
)
_B64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){12,}")
ENCODED_WEIGHT = 0.9


@dataclass(frozen=True, slots=True)
class InjectionScore:
    score: float
    signals: tuple[str, ...]
    """Family names that fired (``override``, ``encoded:base64``…), for the error message."""


NONE = InjectionScore(0.0, ())


def _places(low: str, word: str) -> Iterable[int]:
    """Where ``word`` occurs as a whole word (at most ``MAX_PLACES`` times)."""
    n, at, found = len(word), low.find(word), 0
    while at != -1 and found < MAX_PLACES:
        before = low[at - 1] if at else " "
        after = low[at + n] if at + n < len(low) else " "
        if not before.isalnum() and not after.isalnum():
            found += 1
            yield at
        at = low.find(word, at + n)


def _phrase_signals(low: str, words: set[str]) -> list[tuple[str, float]]:
    """Signals whose pattern matches at (or just around) an occurrence of one of its anchor
    words: a few ``str.find`` and short matches, never a regex over the whole text."""
    present = ANCHORS.intersection(words)
    if not present:
        return []
    places = {word: list(_places(low, word)) for word in present}
    found = []
    for signal in SIGNALS:
        pattern, around = signal.pattern, signal.around
        hit = False
        for word in signal.anchors.intersection(present):
            for at in places[word]:
                if around is None:
                    hit = pattern.match(low, at) is not None
                else:
                    lo, hi = max(0, at - around[0]), at + len(word) + around[1]
                    hit = pattern.search(low, lo, hi) is not None
                if hit:
                    break
            if hit:
                found.append((signal.family, signal.weight))
                break
    return found


def _words(low: str) -> set[str]:
    return set(low.translate(_PUNCT).split())


def _decoded(text: str, words: set[str]) -> Iterable[tuple[str, str]]:
    """(encoding, decoded text) of every long base64 or hex run, and rot13 when the text
    has rot13 of a trigger word."""
    for start, end in runs(one_byte_per_char(text)):
        if end - start < 24:
            continue
        blob = text[start:end]
        for m in _HEX.finditer(blob):
            with contextlib.suppress(ValueError):
                yield "hex", bytes.fromhex(m.group()).decode("utf-8")
        for m in _B64.finditer(blob):
            chunk = m.group()
            try:
                raw = base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=True)
                yield "base64", raw.decode("utf-8")
            except (binascii.Error, ValueError):
                pass
    if not _ROT13_WORDS.isdisjoint(words):
        yield "rot13", codecs.decode(text, "rot13")


def _strong(decoded: str) -> bool:
    low = decoded.lower()
    inner = _phrase_signals(low, _words(low))
    return any(fam != "encoded" and w >= 0.5 for fam, w in inner)


def score(texts: Iterable[str]) -> InjectionScore:
    """The injection score of what the caller wrote (user and tool messages)."""
    found: list[tuple[str, float]] = []
    for text in texts:
        low = text.lower()
        words = _words(low)
        found += _phrase_signals(low, words)
        for encoding, decoded in _decoded(text, words):
            if _strong(decoded):
                found.append((f"encoded:{encoding}", ENCODED_WEIGHT))
                break
    if not found:
        return NONE
    rest = 1.0
    for _, weight in found:
        rest *= 1.0 - weight
    families = tuple(dict.fromkeys(name for name, _ in found))
    return InjectionScore(round(1.0 - rest, 4), families)
