from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from schemas import tokens


def test_encodings_load_from_the_bundled_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))

    def no_network(*_: object, **__: object) -> bytes:
        raise AssertionError("tiktoken tried to download an encoding")

    monkeypatch.setattr("tiktoken.load.read_file", no_network)
    tokens.get_encoding.cache_clear()
    try:
        tokens.install_offline_encodings()
        files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
        assert set(files.values()) == set(tokens._SHA256.values())
        assert tokens.get_encoding("o200k_base").encode("hello world") == [24912, 2375]
        assert tokens.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    finally:
        tokens.get_encoding.cache_clear()


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
    ],
)
def test_encoding_by_model_family(model: str, encoding: str) -> None:
    assert tokens.encoding_name_for_model(model) == encoding


def test_chat_prompt_framing() -> None:
    enc = tokens.get_encoding("o200k_base")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi", "name": "ann"},
    ]
    expected = 3 + sum(
        3 + len(enc.encode(m["role"])) + len(enc.encode(m["content"])) for m in messages
    )
    expected += len(enc.encode("ann")) + 1
    assert tokens.count_chat_prompt(messages, "gpt-4o") == expected


def test_content_parts_count_their_text_only() -> None:
    parts = [{"type": "text", "text": "describe"}, {"type": "image_url", "image_url": {"url": "x"}}]
    as_parts = tokens.count_chat_prompt([{"role": "user", "content": parts}], "gpt-4o")
    as_text = tokens.count_chat_prompt([{"role": "user", "content": "describe"}], "gpt-4o")
    assert as_parts == as_text


def test_special_token_text_is_counted_not_rejected() -> None:
    assert tokens.count_text("<|endoftext|>", "gpt-4o") > 1
