"""Presidio analyses text with the network cut off: no model download, no suffix-list fetch."""

from __future__ import annotations

import subprocess
import sys

import orjson

# Runs in a fresh interpreter: the network is cut before anything is imported, so any
# attempt to download (spaCy model, public suffix list) fails the run.
SCRIPT = """
import socket, sys, orjson
def refuse(*args, **kwargs):
    raise OSError(f"network access attempted: {args!r}")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.getaddrinfo = refuse
socket.create_connection = refuse
from processors.guards.analyzer import build_analyzer, installed_spacy_model
text = sys.argv[1]
found = [
    {"type": r.entity_type, "text": text[r.start:r.end], "score": r.score}
    for r in build_analyzer().analyze(text=text, language="en")
]
print(orjson.dumps({"spacy": installed_spacy_model(), "found": found}).decode())
"""
TEXT = (
    "Mail jane.doe@example.com or call 212-555-0123. Card 4111 1111 1111 1111 "
    "(not 4111 1111 1111 1112), IBAN DE89370400440532013000, host 10.1.2.3."
)


def test_pattern_recognizers_run_offline() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, TEXT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "network access attempted" not in result.stderr
    report = orjson.loads(result.stdout.strip().splitlines()[-1])
    found = {(f["type"], f["text"]) for f in report["found"]}
    assert {
        ("EMAIL_ADDRESS", "jane.doe@example.com"),
        ("PHONE_NUMBER", "212-555-0123"),
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("IBAN_CODE", "DE89370400440532013000"),
        ("IP_ADDRESS", "10.1.2.3"),
    } <= found
    assert ("CREDIT_CARD", "4111 1111 1111 1112") not in found  # fails the Luhn check
