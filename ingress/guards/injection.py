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
anchor. One pass finds where every such word occurs as a whole word (``_marks``: one
``bytes.translate`` and one search for the words as a trie-shaped alternation, which tries
only word starts), so the words present and their places cost the same whether a prompt
holds two of them or thirty; a lead near an anchor is then a ``bisect`` away.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

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
"""Places of one anchor word a signal tries, at most (a text repeating it is not slower)."""
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


_Trie: TypeAlias = dict[str, "_Trie"]


def _trie(words: Iterable[str]) -> str:
    """An alternation matching exactly ``words``, shaped as a trie (``jailbr(?:eak(?:ing)?|
    oken)``): the regex engine rejects a place after one character test per first letter."""
    root: _Trie = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def alternation(node: _Trie) -> str:
        alternatives = [re.escape(c) + alternation(node[c]) for c in sorted(node) if c]
        if not alternatives:
            return ""
        if len(alternatives) == 1 and "" not in node:
            return alternatives[0]
        return f"(?:{'|'.join(alternatives)}){'?' if '' in node else ''}"

    return alternation(root)


# over the split text padded with a space each side: a watched word between two separators
_MARK = re.compile(rf" ({_trie(_WATCHED)})(?= )")
_B64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){12,}")
ENCODED_WEIGHT = 0.9


@dataclass(frozen=True, slots=True)
class InjectionScore:
    score: float
    signals: tuple[str, ...]
    """Family names that fired (``override``, ``encoded:base64``…), for the error message."""


NONE = InjectionScore(0.0, ())


class _Marks(NamedTuple):
    """Where the watched words occur in a text, as whole words, in order."""

    words: list[str]
    starts: list[int]
    places: dict[str, list[int]]
    """word → its starts"""


def _marks(low: str) -> tuple[frozenset[str], _Marks]:
    """The words of ``low`` (lower-cased text) that a signal or the rot13 check looks for,
    and where they occur."""
    ascii_only = low.isascii()
    raw = low.encode() if ascii_only else low.encode("ascii", "replace")  # same positions
    words: list[str] = []
    starts: list[int] = []
    places: dict[str, list[int]] = {}
    for m in _MARK.finditer(f" {raw.translate(_SPLIT).decode('ascii')} "):
        word, at = m[1], m.start()  # the space before it: its start in ``low``
        words.append(word)
        starts.append(at)
        if word in places:
            places[word].append(at)
        else:
            places[word] = [at]
    present = frozenset(places)
    if not ascii_only and words:
        # every non-ASCII character split words above; a letter or digit among them
        # (``\b`` sees it as part of the word) joins it to the word instead
        size = len(low)
        kept = [
            (word, at)
            for word, at in zip(words, starts, strict=True)
            if not (at and low[at - 1].isalnum())
            and not (at + len(word) < size and low[at + len(word)].isalnum())
        ]
        words, starts, places = [w for w, _ in kept], [at for _, at in kept], {}
        for word, at in kept:
            places.setdefault(word, []).append(at)
    return present, _Marks(words, starts, places)


def _hit(signal: Signal, low: str, marks: _Marks) -> bool:
    pattern, around, places = signal.pattern, signal.around, marks.places
    if around is None:
        for word in signal.anchors:
            for at in places.get(word, ())[:MAX_PLACES]:
                if pattern.match(low, at):
                    return True
        return False
    before, after = around
    leads, words, starts = signal.leads, marks.words, marks.starts
    count = len(starts)
    for word in signal.anchors:
        for at in places.get(word, ())[:MAX_PLACES]:
            lo, hi = max(0, at - before), at + len(word) + after
            # a match starts at a lead: the marks in the window that are one
            i = bisect_left(starts, lo)
            while i < count and starts[i] <= hi:
                if words[i] in leads and pattern.match(low, starts[i], hi):
                    return True
                i += 1
    return False


def _phrase_signals(low: str, present: frozenset[str], marks: _Marks) -> list[tuple[str, float]]:
    """Signals whose pattern matches at (or just around) an occurrence of one of its anchor
    words, starting at one of its leads: a few short matches, never a regex over the whole
    text. ``present`` and ``marks``: the text's watched words and their places (``_marks``)."""
    if ANCHORS.isdisjoint(present):
        return []
    found = []
    for signal in SIGNALS:
        if signal.anchors.isdisjoint(present):
            continue
        if signal.needs and signal.needs.isdisjoint(present):
            continue
        if signal.leads and signal.leads.isdisjoint(present):
            continue
        if _hit(signal, low, marks):
            found.append((signal.family, signal.weight))
    return found


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
    inner = _phrase_signals(low, *_marks(low))
    return any(fam != "encoded" and w >= 0.5 for fam, w in inner)


def score(texts: Iterable[str]) -> InjectionScore:
    """The injection score of what the caller wrote (user and tool messages)."""
    found: list[tuple[str, float]] = []
    for text in texts:
        low = text.lower()
        words, marks = _marks(low)
        found += _phrase_signals(low, words, marks)
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
