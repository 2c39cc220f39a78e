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

# 10 to 13 digits with no separators (a national number, or E.164 without its +): a phone
# only when the words just before it say so; never 10 digits from 1 (epoch seconds)
NANP = re.compile(r"[2-9]\d{2}[2-9]\d{6}")
"""A North American number as dialled (area code and exchange never start with 0 or 1):
with no words that say otherwise, a bare one counts as a phone, since a privacy gateway
would rather redact an odd identifier than let a phone number out."""
BARE_PHONE = re.compile(r"(?<![\w+#/.,-])(?:[02-9]\d{9}|\d{11,13})(?![\w-]|[.,]\d)", _A)
CONTEXT_WORDS = 6
"""How many words before a bare number its context is read from (within its sentence)."""


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_PHONE_WORDS = _set(
    "phone phones telephone tel ph mobile mob cell cellphone whatsapp fax sms landline "
    "voicemail hotline helpline dial contact"
)
_PHONE_VERBS = _set("call ring text reach phone message sms whatsapp dial")
_TO_WHOM = _set("me us him her them you back at on")
_OWNERS = _set("my his her your our their")
_ID_WORDS = _set(
    "order orders invoice inv ticket tracking ref reference case sku part serial confirmation "
    "booking shipment shipping po id ids item build isbn issn account acct customer member "
    "membership policy routing license licence model transaction txn receipt batch version ver "
    "release employee student patient record claim card iban bank passport zip pin otp code job "
    "task pid process request trace commit issue pr row offset timestamp epoch unix seed hash "
    "checksum port size total amount count price balance sum usd eur vat tax ein imei user "
    "users uid client error errno status exit line page step session device node instance "
    "attempt run"
)
_UNITS = _set(
    "ms s sec secs seconds minutes bytes kb mb gb times rows records items users requests calls "
    "tokens units points votes views downloads km miles"
)
_SENTENCE_END = re.compile(r"[!?;\n]|\.\s+(?=[A-Z])")
_WORD = re.compile(r"[a-z0-9$\u20ac\u00a3]+")


def phone_context(text: str, start: int, end: int) -> bool | None:
    """Whether the words before ``text[start:end]`` (a bare number) say it is a phone: the
    nearest telling word within ``CONTEXT_WORDS`` words of its sentence decides. Phone words
    (``phone``, ``mobile``, ``fax``...), ``call``/``text``/``reach`` + ``me``/``at``...,
    ``call`` right before it, ``at``/``on`` right before it with ``call``/``reach``... in
    the window, and ``my``/``your``... ``number`` say yes; an identifier word
    (``order``, ``invoice``, ``account``, ``isbn``, ``id``...), a currency, a number or a
    code (``17``, ``B7``) says no, as does a unit right after it (``ms``, ``rows``), and so
    does any other ``number`` (``the number``, ``serial number``). None: nothing tells."""
    before = text[max(0, start - 64) : start]
    cut = [m.end() for m in _SENTENCE_END.finditer(before)]
    if cut:
        before = before[cut[-1] :]
    words = _WORD.findall(before.lower())[-CONTEXT_WORDS:]
    after = _WORD.match(text[end : end + 12].lower().lstrip(" "))
    if after is not None and after.group() in _UNITS:
        return False
    for i in range(len(words) - 1, -1, -1):
        word = words[i]
        if word in _ID_WORDS or not word.isalpha():
            return False
        if word in _PHONE_WORDS:
            return True
        if word in _PHONE_VERBS and i == len(words) - 1:
            return True  # "call 4155550132"
        if word in _TO_WHOM and i and words[i - 1] in _PHONE_VERBS:
            return True  # "call me", "text back"
        if word in {"at", "on"} and i == len(words) - 1 and _PHONE_VERBS.intersection(words):
            return True  # "reach the front desk at"
        if word in {"number", "no", "num"}:
            return bool(i) and words[i - 1] in _OWNERS  # "my number", not "serial number"
    return None


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


def _numbers_in(text: str, shape: bytes, lo: int, hi: int, spans: list[Span]) -> None:
    """Every numeric entity in ``text[lo:hi]`` (a candidate region), most specific first."""
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    def add(a: int, b: int, kind: str) -> None:
        taken.append((a, b))
        spans.append(Span(a, b, kind))

    # each type needs so many digits (a card 13, a phone 10, an SSN 9) or dots (an IPv4 3):
    # most regions (dates, times, amounts) need no regex at all
    n = shape.count(b"0", lo, hi)
    if n >= 13:
        for m in CARD.finditer(text, lo, hi):
            digits = re.sub(r"[ -]", "", m.group())
            if luhn_ok(digits) and card_brand_ok(digits):
                add(m.start(), m.end(), "CREDIT_CARD")
    if n >= 9:
        for m in SSN.finditer(text, lo, hi):
            if free(m.start(), m.end()):
                add(m.start(), m.end(), "SSN")
        for m in SSN_BARE.finditer(text, max(0, lo - 24), hi):
            if free(m.start(1), m.end(1)):
                add(m.start(1), m.end(1), "SSN")
    if n >= 4 and shape.count(b".", lo, hi) >= 3:
        for m in IPV4.finditer(text, lo, hi):
            start = m.start()
            if free(start, m.end()) and not _VERSION_BEFORE.search(_before(text, start, 12)):
                add(start, m.end(), "IP_ADDRESS")
    if n < 10:
        return
    for m in PHONE.finditer(text, lo, hi):
        a, b = m.start(), m.end()
        count = sum(ch.isdigit() for ch in m.group())
        if 10 <= count <= 15 and free(a, b) and not _ID_BEFORE.search(_before(text, a)):
            add(a, b, "PHONE")
    for m in BARE_PHONE.finditer(text, lo, hi):
        a, b = m.start(), m.end()
        if not free(a, b):
            continue
        said = phone_context(text, a, b)
        if said or (said is None and NANP.fullmatch(m.group())):
            add(a, b, "PHONE")


def numbers(text: str, shape: bytes) -> list[Span]:
    """Cards, SSNs, IPv4 addresses and phones, looked for only where the shape has a run of
    seven or more digits and separators."""
    spans: list[Span] = []
    hi_done = 0
    for m in _NUMERIC.finditer(shape):
        lo, hi = max(hi_done, m.start() - 4), min(len(text), m.end() + 1)
        _numbers_in(text, shape, lo, hi, spans)
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
