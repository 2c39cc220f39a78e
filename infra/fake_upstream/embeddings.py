"""``POST /v1/embeddings``: deterministic unit vectors and exact prompt-token usage."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from infra.fake_upstream import errors, wire
from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.upstream import Upstream
from schemas.tokens import count_text

DEFAULT_DIMENSIONS = 8
MAX_DIMENSIONS = 3072
MAX_INPUTS = 2048


def _inputs(given: Any) -> list[str | list[int]]:
    """A string, strings, token ids or arrays of token ids, as OpenAI accepts them."""
    if given is None:
        raise errors.missing("input")
    one_ids = isinstance(given, list) and given and all(isinstance(t, int) for t in given)
    if isinstance(given, str) or one_ids:
        given = [given]
    if not isinstance(given, list):
        raise errors.invalid_type("input", "a string or an array", given)
    if not given:
        raise errors.empty_array("input")
    if len(given) > MAX_INPUTS:
        raise ApiError(400, f"'input' must have at most {MAX_INPUTS} items.", "input")
    for item in given:
        ok_text = isinstance(item, str) and item != ""
        ok_ids = isinstance(item, list) and bool(item) and all(isinstance(t, int) for t in item)
        if not (ok_text or ok_ids):
            raise ApiError(400, "'$.input' is invalid. Please check the API reference.", "input")
    return given


def vector(item: str | list[int], dimensions: int) -> list[float]:
    """A unit vector derived from the input alone: same input, same embedding."""
    seed = item.encode() if isinstance(item, str) else struct.pack(f"<{len(item)}q", *item)
    raw = b""
    block = 0
    while len(raw) < dimensions * 2:
        raw += hashlib.blake2b(seed, digest_size=64, salt=block.to_bytes(16, "big")).digest()
        block += 1
    values = [v / 32768 for v in struct.unpack(f"<{dimensions}h", raw[: dimensions * 2])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 7) for v in values]


def _encoded(vec: list[float], encoding_format: Any) -> Any:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
    return vec


async def create_embeddings(upstream: Upstream, request: Request) -> Response:
    _, headers, _ = await upstream.admit(request)
    body, model = await upstream.body(request, headers)
    return respond(upstream, headers, body, model, "openai")


def respond(
    upstream: Upstream, headers: dict[str, str], body: dict[str, Any], model: str, provider: str
) -> Response:
    """OpenAI's embeddings answer for ``model`` (Azure: the deployment); shared by Mistral."""
    try:
        inputs = _inputs(body.get("input"))
        dims = body.get("dimensions", DEFAULT_DIMENSIONS)
        if not isinstance(dims, int) or isinstance(dims, bool):
            raise errors.invalid_type("dimensions", "an integer", dims)
        if dims < 1:
            raise errors.below_minimum("dimensions", 1, dims)
        if dims > MAX_DIMENSIONS:
            raise errors.above_maximum("dimensions", MAX_DIMENSIONS, dims)
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            message = f"Invalid value: '{fmt}'. Supported values are: 'float' and 'base64'."
            raise ApiError(400, message, "encoding_format", "invalid_value")
    except ApiError as exc:
        exc.headers = headers
        raise
    vectors = [_encoded(vector(item, dims), fmt) for item in inputs]
    tokens = sum(count_text(i, model) if isinstance(i, str) else len(i) for i in inputs)
    upstream.stats.answered(200)
    upstream.stats.embedded(model, tokens, provider)
    return Response(wire.embeddings(model, vectors, tokens), 200, headers, "application/json")
