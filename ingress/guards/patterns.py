"""PII detectors for the inline path: e-mail, phone, SSN, cards (Luhn), IBAN (mod 97), IP.

Regexes over a 2 KB prompt cost 20-45 µs each on this hardware, so no detector scans the
whole text: the text is first mapped byte for byte to its *shape* (digits → ``0``,
letters → ``A``/``a``, one ``bytes.translate``), a literal search in the shape finds the few
places where a number, an IBAN or an ``@`` can be, and the precise regexes run only there.
Each hit is then validated (check digits, country lengths, context words), because a
guard that redacts order numbers is a guard people switch off.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

from ingress.guards.checksums import IBAN_LENGTHS, card_brand_ok, iban_ok, luhn_ok


class Span(NamedTuple):
    start: int
    end: int
    type: str
    kind: str = ""
    """A finer label (``openai``, ``jwt``…) for messages and the evaluation; never a value."""


_DIGITS = b"0123456789"
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = b"abcdefghijklmnopqrstuvwxyz"
SHAPE = bytes.maketrans(_DIGITS + _UPPER + _LOWER, b"0" * 10 + b"A" * 26 + b"a" * 26)

_NUMERIC = re.compile(rb"0[0 .()/-]{5,}0")  # 7+ characters of digits and separators
_IBAN_START = re.compile(rb"AA00")
_A = re.ASCII

EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![\w-])",
    _A,
)
_NOT_TLD = frozenset(
    [
        "png",
        "jpg",
        "jpeg",
        "gif",
        "svg",
        "webp",
        "ico",
        "js",
        "mjs",
        "ts",
        "tsx",
        "jsx",
        "css",
        "scss",
        "json",
        "html",
        "md",
        "txt",
        "lock",
        "yml",
        "yaml",
        "toml",
        "ini",
        "py",
        "rb",
        "go",
        "rs",
        "java",
        "kt",
        "c",
        "h",
        "cpp",
        "sh",
        "zip",
        "gz",
        "tar",
        "pdf",
    ]
)
PHONE = re.compile(
    r"(?<![\w+#/.-])(?:"
    r"(?:\+?1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}"  # North American
    r"|\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,5}"  # international, with +
    r")(?![\w-]|\.\d)",
    _A,
)
SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w-])", _A)
SSN_BARE = re.compile(
    r"(?i:\b(?:ssn|social security(?: number)?|ss#)\W{0,4})((?!000|666|9\d\d)\d{9})\b", _A
)
CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])", _A)
IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r"(?![\w]|\.\d)",
    _A,
)
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])", _A)
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,32}", _A)

# a number right after these words is an identifier, not a phone (nor an IP: versions)
_ID_BEFORE = re.compile(
    r"(?i:order|invoice|ticket|tracking|ref(?:erence)?|case|sku|part|serial|confirmation|"
    r"booking|shipment|po|id|item|build|isbn|#|no\.?)\W{0,3}(?:number|num|no\.?|#|id|:)?\W{0,3}$"
)
_VERSION_BEFORE = re.compile(r"(?i:version|ver\.?|release|build|oid|v)\W{0,2}$")


def _before(text: str, start: int, n: int = 24) -> str:
    return text[max(0, start - n) : start]


def emails(text: str) -> list[Span]:
    spans: list[Span] = []
    pos = 0
    while (at := text.find("@", pos)) != -1:
        m = EMAIL.search(text, max(pos, at - 64), at + 256)
        while m is not None and m.end() <= at:  # an earlier look-alike, not this @
            m = EMAIL.search(text, m.end(), at + 256)
        if m is not None and m.start() <= at:
            if m.group(1).lower() not in _NOT_TLD:
                spans.append(Span(m.start(), m.end(), "EMAIL"))
            pos = m.end()
        else:
            pos = at + 1
    return spans


def _numbers_in(text: str, lo: int, hi: int, spans: list[Span]) -> None:
    """Every numeric entity in ``text[lo:hi]`` (a candidate region), most specific first."""
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    def add(a: int, b: int, kind: str) -> None:
        taken.append((a, b))
        spans.append(Span(a, b, kind))

    for m in CARD.finditer(text, lo, hi):
        digits = re.sub(r"[ -]", "", m.group())
        if luhn_ok(digits) and card_brand_ok(digits):
            add(m.start(), m.end(), "CREDIT_CARD")
    for m in SSN.finditer(text, lo, hi):
        if free(m.start(), m.end()):
            add(m.start(), m.end(), "SSN")
    for m in SSN_BARE.finditer(text, max(0, lo - 24), hi):
        if free(m.start(1), m.end(1)):
            add(m.start(1), m.end(1), "SSN")
    for m in IPV4.finditer(text, lo, hi):
        if free(m.start(), m.end()) and not _VERSION_BEFORE.search(_before(text, m.start(), 12)):
            add(m.start(), m.end(), "IP_ADDRESS")
    for m in PHONE.finditer(text, lo, hi):
        a, b = m.start(), m.end()
        count = sum(ch.isdigit() for ch in m.group())
        if 10 <= count <= 15 and free(a, b) and not _ID_BEFORE.search(_before(text, a)):
            add(a, b, "PHONE")


def numbers(text: str, shape: bytes) -> list[Span]:
    """Cards, SSNs, IPv4 addresses and phones, looked for only where the shape has a run of
    seven or more digits and separators."""
    spans: list[Span] = []
    hi_done = 0
    for m in _NUMERIC.finditer(shape):
        lo, hi = max(hi_done, m.start() - 4), min(len(text), m.end() + 1)
        _numbers_in(text, lo, hi, spans)
        hi_done = hi
    return spans


def ibans(text: str, shape: bytes) -> list[Span]:
    spans: list[Span] = []
    for start in _IBAN_START.finditer(shape):
        m = IBAN.match(text, start.start())
        if m is None:
            continue
        compact_len = 0
        need = IBAN_LENGTHS.get(text[start.start() : start.start() + 2], 0)
        end = m.start()
        for i in range(m.start(), m.end()):  # cut at the country's length, spaces aside
            if text[i] != " ":
                compact_len += 1
                if compact_len == need:
                    end = i + 1
                    break
        compact = text[m.start() : end].replace(" ", "")
        if need and iban_ok(compact) and not (end < len(text) and text[end].isalnum()):
            spans.append(Span(m.start(), end, "IBAN"))
    return spans


def ipv6(text: str) -> list[Span]:
    spans: list[Span] = []
    for m in IPV6.finditer(text):
        candidate = m.group()
        if sum(1 for g in candidate.split(":") if g) < 2:
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        spans.append(Span(m.start(), m.end(), "IP_ADDRESS"))
    return spans
