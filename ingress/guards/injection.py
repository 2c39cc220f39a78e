"""Prompt-injection heuristics: a score in 0..1 from phrase signals, not a model.

Four families: instruction override ("ignore all previous instructions"), system prompt
extraction ("print your system prompt"), role-play jailbreaks ("pretend you have no
restrictions", DAN) and encoded payloads (base64, hex or rot13 hiding one of those). Each
signal has a weight; the score is ``1 - Π(1 - w)`` over the signals found, so one strong
signal or several weak ones cross a threshold. A phrase needs its verb *and* its object:
"ignore the previous test failure" has no instruction to override.

The regexes cost tens of µs each on a 2 KB prompt, so they run only for a family whose
trigger words occur in the text (one set of its words, built once per text).
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
_OVERRIDE_VERBS = r"(?:ignore|ignoring|disregard|disregarding|forget|override|bypass|discard|skip)"
# (family, weight, pattern) on the lower-cased text
SIGNALS: tuple[tuple[str, float, re.Pattern[str]], ...] = (
    ("override", 0.9, re.compile(rf"\b{_OVERRIDE_VERBS}\b{_FILL}\s+{_OBJECTS}")),
    (
        "override",
        0.8,
        re.compile(
            r"\b(?:forget|ignore|disregard)\s+(?:everything|all(?: of it)?)\s+(?:you(?:'ve| have|"
            r" were)? (?:been told|told|learned|know)|above|before|prior|so far|previously|earlier)"
        ),
    ),
    (
        "override",
        0.5,
        re.compile(r"\b(?:new|updated|real|actual|true|revised)\s+(?:instructions|system prompt)"),
    ),
    ("override", 0.4, re.compile(r"\bfrom now on,?\s+(?:you|act|respond|answer|behave|your)")),
    (
        "override",
        0.6,
        re.compile(r"\byou(?: are|'re) no longer (?:an? |bound|restricted|limited|required)"),
    ),
    (
        "extraction",
        0.85,
        re.compile(
            r"\b(?:reveal|show|print|repeat|output|display|leak|dump|share|give|tell|write out|"
            r"recite|spell out|paste|copy|what (?:is|are|was|were))\b(?:\s+(?:me|us))?"
            r"(?:\s+(?:your|the|its|all|of|full|entire|exact|complete|original|initial|hidden|"
            r"secret|verbatim|confidential|above|first|text|in))*\s+"
            r"(?:system\s+(?:prompt|message|instructions?)|(?:initial|original|hidden|secret|"
            r"developer|pre-?)\s*(?:prompt|instructions)|instructions\s+(?:you were given|above)|"
            r"prompt\s+(?:above|you were given)|rules you (?:were given|follow))"
        ),
    ),
    (
        "extraction",
        0.8,
        re.compile(
            r"\brepeat\s+(?:the\s+)?(?:words|text|everything|all|content|lines?)\s+"
            r"(?:above|before|that came before|preceding)"
        ),
    ),
    (
        "extraction",
        0.6,
        re.compile(r"\bwhat (?:were|was) you (?:told|instructed|given)\b.{0,30}\b(?:before|start)"),
    ),
    ("jailbreak", 0.9, re.compile(r"\bdo anything now\b")),
    ("jailbreak", 0.55, re.compile(r"\bjailbr(?:eak|oken|eaking)\b")),
    (
        "jailbreak",
        0.85,
        re.compile(r"\b(?:dan|god|jailbreak|unrestricted|unfiltered|evil|chaos|sudo)\s+mode\b"),
    ),
    (
        "jailbreak",
        0.45,
        re.compile(
            r"\b(?:you are|you're|enter|activate|switch to)\s+(?:now\s+)?(?:in\s+)?developer mode"
        ),
    ),
    (
        "jailbreak",
        0.85,
        re.compile(
            r"\b(?:pretend|imagine|act|behave|roleplay|role-play|play the role|you are)\b.{0,80}?"
            r"\b(?:no|without(?: any)?|free (?:of|from)|ignores?|not bound by|unbound by|zero)\s+"
            r"(?:\w+\s+)?(?:restrictions|rules|limits|limitations|filters|guidelines|ethics|"
            r"morals|censorship|content polic(?:y|ies)|safety)"
        ),
    ),
    (
        "jailbreak",
        0.8,
        re.compile(r"\byou (?:are|have been) (?:now )?(?:freed|liberated|unchained|jailbroken)"),
    ),
    (
        "jailbreak",
        0.6,
        re.compile(
            r"\b(?:no|without any|free of all) (?:ethical|moral|content) "
            r"(?:guidelines|restrictions|filters|constraints|boundaries|limits)"
        ),
    ),
    ("jailbreak", 0.35, re.compile(r"\b(?:stay|remain|never break)\s+(?:in\s+)?character\b")),
    (
        "jailbreak",
        0.4,
        re.compile(
            r"\b(?:never refuse|cannot refuse|can't refuse|must not refuse|will not refuse)"
        ),
    ),
    (
        "encoded",
        0.5,
        re.compile(
            r"\b(?:decode|decipher|deobfuscate|unscramble)\b.{0,80}?\b(?:follow|execute|obey|"
            r"do what it says|carry out|comply|act on)"
        ),
    ),
)
TRIGGERS: dict[str, frozenset[str]] = {
    "override": frozenset(
        [
            "ignore",
            "ignoring",
            "ignores",
            "disregard",
            "disregarding",
            "forget",
            "override",
            "bypass",
            "discard",
            "skip",
            "new",
            "updated",
            "real",
            "actual",
            "true",
            "revised",
            "now",
            "longer",
        ]
    ),
    "extraction": frozenset(
        [
            "prompt",
            "prompts",
            "instructions",
            "instruction",
            "repeat",
            "system",
            "rules",
            "told",
            "instructed",
        ]
    ),
    "jailbreak": frozenset(
        [
            "anything",
            "jailbreak",
            "jailbroken",
            "jailbreaking",
            "mode",
            "pretend",
            "imagine",
            "act",
            "behave",
            "roleplay",
            "role-play",
            "role",
            "freed",
            "liberated",
            "unchained",
            "ethical",
            "moral",
            "character",
            "refuse",
            "restrictions",
            "rules",
            "limits",
            "filters",
            "guidelines",
            "censorship",
        ]
    ),
    "encoded": frozenset(["decode", "decipher", "deobfuscate", "unscramble"]),
}
_PUNCT = str.maketrans({c: " " for c in "\"'.,;:!?()[]{}<>*`|/\\=+#~_"})
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


def _phrase_signals(low: str, words: set[str]) -> list[tuple[str, float]]:
    hot = {family for family, trigger in TRIGGERS.items() if not trigger.isdisjoint(words)}
    if not hot:
        return []
    return [(fam, w) for fam, w, pattern in SIGNALS if fam in hot and pattern.search(low)]


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
