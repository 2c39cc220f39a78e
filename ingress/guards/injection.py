"""Prompt-injection heuristics: a score in 0..1 from phrase signals, not a model.

Four families: instruction override ("ignore all previous instructions"), system prompt
extraction ("print your system prompt"), role-play jailbreaks ("pretend you have no
restrictions", DAN) and encoded payloads (base64, hex or rot13 hiding one of those). Each
signal has a weight; the score is ``1 - Π(1 - w)`` over the signals found, so one strong
signal or several weak ones cross a threshold. A phrase needs its verb *and* its object:
"ignore the previous test failure" has no instruction to override.

A regex search costs tens of µs on a 2 KB prompt, so none scans the text: each signal
names uncommon words its phrase contains (anchors) and, when the phrase starts before its
anchor, the words it can start with (leads); its pattern is matched only at a lead near an
anchor. The text's words are looked up once (one ``bytes.translate`` and a split), and a
word's places are found (``str.find``) only when a signal still needs them.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ingress.guards.scan import one_byte_per_char
from ingress.guards.secrets import runs

_FILL = (
    r"(?:\s+(?:all|any|every|each|the|your|my|of|previous|prior|above|earlier|preceding|"
    r"foregoing|original|initial|existing|current|these|those|system|developer|safety|other|"
    r"old|given|such|that|this|and|guidelines,?))*"
)
_OBJECT_WORDS = (
    "instruction instructions prompt prompts rules directive directives guidelines guardrails "
    "commands context programming constraints restrictions policies directions training messages"
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
    leads: frozenset[str] = frozenset()
    """With ``around``: the words a match starts with (the first word of each alternative)."""
    needs: frozenset[str] = frozenset()
    """If set, a match contains one of these words too: without one the signal is skipped."""


def _signal(  # noqa: PLR0917
    family: str,
    weight: float,
    anchors: str,
    pattern: str,
    around: tuple[int, int] | None = None,
    leads: str = "",
    needs: str = "",
) -> Signal:
    assert (around is None) == (not leads), "a signal matched around its anchor names its leads"
    return Signal(
        family,
        weight,
        frozenset(anchors.split()),
        re.compile(rf"\b{pattern}"),
        around,
        frozenset(leads.split()),
        frozenset(needs.split()),
    )


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
        needs=_OBJECT_WORDS,
    ),
    _signal(
        "override",
        0.8,
        "forget ignore disregard",
        r"(?:forget|ignore|disregard)\s+(?:everything|all(?: of it)?)\s+(?:you(?:'ve| have|"
        r" were)? (?:been told|told|learned|know)|above|before|prior|so far|previously|earlier)",
        needs="everything all",
    ),
    _signal(
        "override",
        0.5,
        "instructions prompt",
        r"(?:new|updated|real|actual|true|revised)\s+(?:instructions|system prompt)",
        (24, 16),
        "new updated real actual true revised",
    ),
    _signal(
        "override",
        0.75,
        "instructions rules prompt",
        r"new\s+(?:instructions|rules|system prompt)\s*:",
        (12, 16),
        "new",
    ),
    _signal(
        "override",
        0.4,
        "now",
        r"from now on,?\s+(?:you|act|respond|answer|behave|your)",
        (8, 40),
        "from",
    ),
    _signal(
        "override",
        0.6,
        "longer",
        r"you(?: are|'re) no longer (?:an? |bound|restricted|limited|required)",
        (16, 32),
        "you",
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
        "reveal show print repeat output display leak dump share give tell write recite spell "
        "paste copy what",
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
        "what",
    ),
    _signal("jailbreak", 0.9, "anything", r"do anything now\b", (4, 12), "do"),
    _signal("jailbreak", 0.55, "jailbreak jailbroken jailbreaking", r"jailbr(?:eak|oken|eaking)\b"),
    _signal(
        "jailbreak",
        0.85,
        "mode",
        r"(?:dan|god|jailbreak|unrestricted|unfiltered|evil|chaos|sudo)\s+mode\b",
        (24, 4),
        "dan god jailbreak unrestricted unfiltered evil chaos sudo",
    ),
    _signal(
        "jailbreak",
        0.45,
        "mode",
        r"(?:you are|you're|enter|activate|switch to)\s+(?:now\s+)?(?:in\s+)?developer mode",
        (48, 4),
        "you enter activate switch",
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
        "pretend imagine act behave roleplay role play you",
    ),
    _signal(
        "jailbreak",
        0.8,
        "freed liberated unchained jailbroken",
        r"you (?:are|have been) (?:now )?(?:freed|liberated|unchained|jailbroken)",
        (24, 4),
        "you",
    ),
    _signal(
        "jailbreak",
        0.6,
        "ethical moral",
        r"(?:no|without any|free of all) (?:ethical|moral|content) "
        r"(?:guidelines|restrictions|filters|constraints|boundaries|limits)",
        (24, 48),
        "no without free",
    ),
    _signal(
        "jailbreak",
        0.35,
        "character",
        r"(?:stay|remain|never break)\s+(?:in\s+)?character\b",
        (24, 2),
        "stay remain never",
    ),
    _signal(
        "jailbreak",
        0.4,
        "refuse",
        r"(?:never refuse|cannot refuse|can't refuse|must not refuse|will not refuse)",
        (20, 2),
        "never cannot can must will",
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
MAX_PLACES = 32
# every byte but an ASCII letter or digit splits words: the words found are a superset of
# those a pattern's ``\b`` sees, so a signal skipped for want of one could not match
_SPLIT = bytes(
    b if 48 <= b <= 57 or 97 <= b <= 122 else b + 32 if 65 <= b <= 90 else 32 for b in range(256)
)
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
_WATCHED: frozenset[str] = ANCHORS.union(_ROT13_WORDS, *(s.leads | s.needs for s in SIGNALS))
_B64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){12,}")
ENCODED_WEIGHT = 0.9


@dataclass(frozen=True, slots=True)
class InjectionScore:
    score: float
    signals: tuple[str, ...]
    """Family names that fired (``override``, ``encoded:base64``…), for the error message."""


NONE = InjectionScore(0.0, ())


def _places(low: str, word: str) -> list[int]:
    """Where ``word`` occurs as a whole word (at most ``MAX_PLACES`` times)."""
    n, at = len(word), low.find(word)
    found: list[int] = []
    while at != -1 and len(found) < MAX_PLACES:
        before = low[at - 1] if at else " "
        after = low[at + n] if at + n < len(low) else " "
        if not before.isalnum() and not after.isalnum():
            found.append(at)
        at = low.find(word, at + n)
    return found


def _starts(low: str, word: str, lo: int, hi: int) -> Iterator[int]:
    """Where ``word`` occurs as a whole word starting in ``low[lo:hi]``."""
    n, at = len(word), low.find(word, lo, hi + len(word))
    while at != -1:
        before = low[at - 1] if at else " "
        after = low[at + n] if at + n < len(low) else " "
        if not before.isalnum() and not after.isalnum():
            yield at
        at = low.find(word, at + n, hi + len(word))


def _hit(signal: Signal, low: str, present: frozenset[str], places: dict[str, list[int]]) -> bool:
    pattern, around = signal.pattern, signal.around
    anchors = signal.anchors.intersection(present)
    if around is None:
        return any(pattern.match(low, at) for w in anchors for at in places[w])
    before, after = around
    leads = signal.leads & present
    for word in anchors:
        for at in places[word]:
            lo, hi = max(0, at - before), at + len(word) + after
            # a match starts at a lead: a few short finds in the window instead of a search
            for lead in leads:
                for start in _starts(low, lead, lo, hi):
                    if pattern.match(low, start, hi):
                        return True
    return False


def _phrase_signals(low: str, present: frozenset[str]) -> list[tuple[str, float]]:
    """Signals whose pattern matches at (or just around) an occurrence of one of its anchor
    words, starting at one of its leads: a few ``str.find`` and short matches, never a regex
    over the whole text. ``present``: the text's words among ``_WATCHED`` (``_words``)."""
    if ANCHORS.isdisjoint(present):
        return []
    places: dict[str, list[int]] = {}
    found = []
    for signal in SIGNALS:
        if signal.anchors.isdisjoint(present):
            continue
        if signal.needs and signal.needs.isdisjoint(present):
            continue
        if signal.leads and signal.leads.isdisjoint(present):
            continue
        for word in signal.anchors.intersection(present):
            if word not in places:
                places[word] = _places(low, word)
        if _hit(signal, low, present, places):
            found.append((signal.family, signal.weight))
    return found


def _words(low: str) -> frozenset[str]:
    """The words of ``low`` (lower-cased text) that a signal or the rot13 check looks for."""
    split = low.encode("utf-8", "surrogatepass").translate(_SPLIT).decode("ascii")
    return _WATCHED.intersection(split.split())


def _decoded(text: str, words: frozenset[str]) -> Iterable[tuple[str, str]]:
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
