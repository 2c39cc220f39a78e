"""Gemini answers, usage and errors in canonical (OpenAI) form."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ingress.providers import canonical
from ingress.providers.base import (
    Failure,
    Json,
    retry_after,
)
from ingress.providers.gemini_request import FILTERED, RETRY_INFO


def call_id(response_id: str, candidate: int, position: int, name: str) -> str:
    """A stable id for a function call Gemini did not name."""
    seed = f"{response_id}/{candidate}/{position}/{name}".encode()
    return "call_" + hashlib.sha256(seed).hexdigest()[:24]


def finish_reason(reason: str | None, called: bool) -> str:
    if reason in FILTERED:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if called else "stop"


def usage(meta: Json) -> Json:
    """Thoughts count as completion (reasoning) tokens and tool-use prompts as prompt, so
    the total matches ``totalTokenCount``; image and audio parts come from the per-modality
    details. Counts of zero are left out by Google."""
    prompt = (meta.get("promptTokenCount") or 0) + (meta.get("toolUsePromptTokenCount") or 0)
    thoughts = meta.get("thoughtsTokenCount") or 0
    completion = (meta.get("candidatesTokenCount") or 0) + thoughts
    asked = _by_modality(meta.get("promptTokensDetails"))
    answered = _by_modality(meta.get("candidatesTokensDetails"))
    return canonical.usage(
        prompt,
        completion,
        meta.get("cachedContentTokenCount") or 0,
        thoughts,
        audio_prompt=asked.get("AUDIO", 0),
        image_prompt=asked.get("IMAGE", 0) + asked.get("VIDEO", 0),
        audio_completion=answered.get("AUDIO", 0),
    )


def _by_modality(details: Any) -> dict[str, int]:
    """``[{"modality": "IMAGE", "tokenCount": 258}, ...]`` → {"IMAGE": 258}."""
    counts: dict[str, int] = {}
    for item in details if isinstance(details, list) else ():
        if isinstance(item, dict) and isinstance(item.get("tokenCount"), int):
            modality = str(item.get("modality", ""))
            counts[modality] = counts.get(modality, 0) + item["tokenCount"]
    return counts


def choice_of(candidate: Json, position: int, rid: str) -> Json:
    index = candidate.get("index", position)
    texts: list[str] = []
    calls: list[Json] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if part.get("thought"):
            continue  # a thought summary, not the answer
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif "functionCall" in part:
            calls.append(tool_call_of(part, rid, index, len(calls)))
    finish = finish_reason(candidate.get("finishReason"), bool(calls))
    msg = canonical.message("".join(texts) if texts or not calls else None, calls)
    choice = canonical.choice(index, msg, finish)
    if candidate.get("logprobsResult"):
        choice["logprobs"] = logprobs(candidate["logprobsResult"])
    return choice


def tool_call_of(part: Json, rid: str, index: int, position: int) -> Json:
    call = part["functionCall"]
    name = str(call.get("name") or "")
    id = str(call.get("id") or call_id(rid, index, position, name))
    out = canonical.tool_call(id, name, orjson.dumps(call.get("args") or {}).decode())
    if part.get("thoughtSignature"):
        out["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return out


def logprobs(result: Json) -> Json:
    """``logprobsResult`` as OpenAI's ``{"content": [{token, logprob, bytes, top_logprobs}]}``."""
    tops = result.get("topCandidates") or []
    content = []
    for step, chosen in enumerate(result.get("chosenCandidates") or ()):
        alternatives = (tops[step].get("candidates") or []) if step < len(tops) else []
        content.append({**_token(chosen), "top_logprobs": [_token(a) for a in alternatives]})
    return {"content": content, "refusal": None}


def _token(candidate: Json) -> Json:
    token = str(candidate.get("token") or "")
    return {
        "token": token,
        "logprob": candidate.get("logProbability", 0.0),
        "bytes": list(token.encode()),
    }


def read_failure(status: int, payload: bytes, headers: Mapping[str, str]) -> Failure:
    """Google's ``{"error": {code, message, status, details}}``; the retry hint is a
    ``RetryInfo`` detail. A bad key is Google's 400 ``API_KEY_INVALID``: a 401 here, since
    the caller's request is not at fault."""
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        text = payload[:300].decode("utf-8", "replace").strip()
        return Failure(status, text or f"HTTP {status}", "", retry_after(headers))
    if isinstance(parsed, list) and parsed:  # streamGenerateContent without alt=sse
        parsed = parsed[0]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return Failure(status, f"HTTP {status}", "", retry_after(headers))
    details = [d for d in error.get("details") or () if isinstance(d, dict)]
    if status == 400 and any(d.get("reason") == "API_KEY_INVALID" for d in details):
        status = 401
    wait = _retry_delay(details)
    return Failure(
        status,
        str(error.get("message") or f"HTTP {status}"),
        str(error.get("status") or ""),
        wait if wait is not None else retry_after(headers),
    )


def _retry_delay(details: Iterable[Json]) -> float | None:
    for detail in details:
        delay = detail.get("retryDelay")
        if detail.get("@type") == RETRY_INFO and isinstance(delay, str):
            try:
                return max(0.0, float(delay.removesuffix("s")))
            except ValueError:
                return None
    return None
