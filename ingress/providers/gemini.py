"""Google Gemini's Generative Language API (v1beta), both ways.

Turns are ``contents`` with roles ``user`` and ``model``; system prompts move to
``systemInstruction``; sampling knobs go in ``generationConfig``. Tool calls carry no ids on
the Developer API, so ids are minted here, stable (a hash of the response id, candidate,
position and name), and a tool message is matched to its function's name through the
assistant turn that made the call. Gemini 3 rejects a history whose function calls lost
their ``thoughtSignature``: it travels on the tool call as
``extra_content.google.thought_signature``, Google's own OpenAI-compatibility field. JSON
Schemas go as ``parametersJsonSchema`` / ``responseJsonSchema``, which take JSON Schema as
it is (``parameters`` / ``responseSchema`` take an OpenAPI subset that rejects some of it).
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ingress.providers import canonical
from ingress.providers.base import (
    Failure,
    Json,
    UnsupportedError,
    UpstreamCall,
    retry_after,
    settings_secret,
)
from ingress.providers.sse import SseEvent, SseParser
from schemas.routing_config import ProviderSettings
from schemas.tokens import count_text

API = "v1beta"
FILTERED = frozenset(
    ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
     "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION")
)  # fmt: skip
UNSUPPORTED = {
    "logit_bias": "Gemini has no logit bias",
    "audio": "Gemini's generateContent does not answer with audio here",
    "prediction": "Gemini has no predicted outputs",
    "web_search_options": "web search is Gemini's google_search tool, not offered here",
    "functions": "legacy `functions` are not translated: send `tools`",
    "function_call": "legacy `function_call` is not translated: send `tool_choice`",
}
THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
THINKING_LEVELS = {"minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH"}
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


class GeminiAdapter:
    kind = "gemini"

    def __init__(self, settings: ProviderSettings) -> None:
        self.base = settings.endpoint()
        self.headers = {"content-type": "application/json", **settings.headers}
        key = settings_secret(settings, "api_key")
        if key:
            self.headers["x-goog-api-key"] = key

    def url(self, model: str, method: str) -> str:
        return f"{self.base}/{API}/{model_name(model)}:{method}"

    def chat_call(self, body: Json, upstream_model: str, stream: bool) -> UpstreamCall:
        payload = orjson.dumps(to_gemini_request(body, upstream_model))
        if stream:
            url = self.url(upstream_model, "streamGenerateContent") + "?alt=sse"
        else:
            url = self.url(upstream_model, "generateContent")
        return UpstreamCall(url, payload, self.headers)

    def chat_result(self, payload: bytes, public_model: str) -> Json:
        answer = orjson.loads(payload)
        if not isinstance(answer, dict) or answer.keys().isdisjoint(
            ("candidates", "promptFeedback")
        ):
            raise ValueError("the answer is not a GenerateContentResponse")
        rid = str(answer.get("responseId") or "")
        choices = [
            _choice(candidate, position, rid)
            for position, candidate in enumerate(answer.get("candidates") or ())
        ]
        if not choices:  # the prompt itself was blocked (promptFeedback.blockReason)
            choices = [canonical.choice(0, canonical.message(""), "content_filter")]
        use = usage(answer.get("usageMetadata") or {})
        return canonical.completion(rid, public_model, choices, use)

    def stream_decoder(self, public_model: str) -> GeminiStream:
        return GeminiStream(public_model)

    def failure(self, status: int, payload: bytes, headers: Mapping[str, str]) -> Failure:
        return read_failure(status, payload, headers)

    def embeddings_call(self, body: Json, upstream_model: str) -> UpstreamCall:
        texts = embedding_texts(body)
        encoding_is_base64(body)  # refuses an encoding it cannot give, before the call
        request: Json = {"model": model_name(upstream_model)}
        if body.get("dimensions") is not None:
            request["outputDimensionality"] = body["dimensions"]
        requests = [{**request, "content": {"parts": [{"text": text}]}} for text in texts]
        payload = orjson.dumps({"requests": requests})
        return UpstreamCall(self.url(upstream_model, "batchEmbedContents"), payload, self.headers)

    def embeddings_result(self, payload: bytes, public_model: str, request: Json) -> Json:
        answer = orjson.loads(payload)
        if not isinstance(answer, dict) or not isinstance(answer.get("embeddings"), list):
            raise ValueError("the answer is not a BatchEmbedContentsResponse")
        tokens = sum(count_text(text, public_model) for text in embedding_texts(request))
        as_base64 = encoding_is_base64(request)
        vectors = [item["values"] for item in answer["embeddings"]]
        return embedding_list(vectors, public_model, tokens, as_base64)

    def health_call(self) -> UpstreamCall | None:
        return UpstreamCall(f"{self.base}/{API}/models?pageSize=1", b"", self.headers, "GET")


def model_name(model: str) -> str:
    """The resource name: ``models/x`` (a name given whole, tuned models too, stays)."""
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def call_id(response_id: str, candidate: int, position: int, name: str) -> str:
    """A stable id for a function call Gemini did not name."""
    seed = f"{response_id}/{candidate}/{position}/{name}".encode()
    return "call_" + hashlib.sha256(seed).hexdigest()[:24]


# --- request ---------------------------------------------------------------------------


def to_gemini_request(body: Json, model: str) -> Json:
    for name, why in UNSUPPORTED.items():
        if body.get(name) is not None:
            raise UnsupportedError(f"`{name}` is not supported on Gemini: {why}")
    if body.get("parallel_tool_calls") is False:
        raise UnsupportedError(
            "Gemini cannot be limited to one tool call per turn (`parallel_tool_calls: false`)"
        )
    modalities = body.get("modalities")
    if modalities is not None and list(modalities) != ["text"]:
        raise UnsupportedError('Gemini answers here in text only: set `modalities` to ["text"]')
    system: list[Json] = []
    contents: list[Json] = []
    names: dict[str, str] = {}  # tool call id → function name, from the assistant turns
    for msg in body["messages"]:
        role = msg.get("role")
        if role in ("system", "developer"):
            text = _text_only(msg.get("content"), role)
            if text:
                system.append({"text": text})
        elif role == "assistant":
            _append(contents, "model", _model_parts(msg, names))
        elif role == "tool":
            _append(contents, "user", [_function_response(msg, names)])
        elif role == "function":
            raise UnsupportedError("legacy `function` messages are not translated: use `tool`")
        else:
            _append(contents, "user", _user_parts(msg.get("content")))
    out: Json = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    config = _generation_config(body, model)
    if config:
        out["generationConfig"] = config
    _tools(body, out)
    return out


def _append(contents: list[Json], role: str, parts: list[Json]) -> None:
    """Consecutive turns of one role merge: Gemini wants user and model to alternate."""
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": list(parts)})


def _text_only(content: Any, role: str) -> str:
    if isinstance(content, list) and any(p.get("type") != "text" for p in content):
        raise UnsupportedError(f"Gemini takes only text in `{role}` messages")
    return canonical.text_of(content)


def _user_parts(content: Any) -> list[Json]:
    if isinstance(content, str):
        return [{"text": content}]
    return [_user_part(part) for part in content or ()]


def _user_part(part: Json) -> Json:
    kind = part.get("type")
    if kind == "text":
        return {"text": part.get("text", "")}
    if kind == "image_url":
        url = (part.get("image_url") or {}).get("url", "")
        inline = canonical.data_url(url)
        if inline:
            return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
        mime = mimetypes.guess_type(url.split("?")[0])[0] or "image/jpeg"
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        mime = f"audio/{audio.get('format') or 'wav'}"
        return {"inlineData": {"mimeType": mime, "data": audio.get("data", "")}}
    if kind == "file":
        file = part.get("file") or {}
        inline = canonical.data_url(str(file.get("file_data") or ""))
        if inline is None:
            raise UnsupportedError(
                "Gemini cannot read OpenAI file ids: send the file inline as `file_data`"
            )
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    raise UnsupportedError(f"Gemini models cannot take `{kind}` content parts here")


def _model_parts(msg: Json, names: dict[str, str]) -> list[Json]:
    text = canonical.text_of(msg.get("content"))
    parts: list[Json] = [{"text": text}] if text else []
    for call in msg.get("tool_calls") or ():
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        names[str(call.get("id"))] = name
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError as exc:
            raise UnsupportedError(
                f"tool call `{call.get('id')}` has arguments that are not JSON; Gemini needs"
                " an object"
            ) from exc
        if not isinstance(arguments, dict):
            raise UnsupportedError(f"tool call `{call.get('id')}`: Gemini needs object arguments")
        part: Json = {"functionCall": {"name": name, "args": arguments}}
        google = (call.get("extra_content") or {}).get("google") or {}
        if google.get("thought_signature"):
            part["thoughtSignature"] = google["thought_signature"]
        parts.append(part)
    return parts


def _function_response(msg: Json, names: dict[str, str]) -> Json:
    call = str(msg.get("tool_call_id"))
    if call not in names:
        raise UnsupportedError(
            f"tool message answers `{call}`, which no earlier assistant tool call has:"
            " Gemini needs the function's name"
        )
    text = canonical.text_of(msg.get("content"))
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    # Gemini wants an object; "output" is the key it reads as the function's result
    response = parsed if isinstance(parsed, dict) else {"output": text}
    return {"functionResponse": {"name": names[call], "response": response}}


def _generation_config(body: Json, model: str) -> Json:
    config: Json = {}
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    if (body.get("n") or 1) > 1:
        config["candidateCount"] = body["n"]
    budget = canonical.max_output_tokens(body)
    if budget is not None:
        config["maxOutputTokens"] = budget
    if body.get("stop") is not None:
        config["stopSequences"] = canonical.stops(body["stop"])
    if body.get("logprobs"):
        config["responseLogprobs"] = True
        if body.get("top_logprobs"):
            config["logprobs"] = body["top_logprobs"]
    fmt = body.get("response_format") or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    if fmt.get("type") == "json_schema" and (fmt.get("json_schema") or {}).get("schema"):
        config["responseJsonSchema"] = fmt["json_schema"]["schema"]
    effort = body.get("reasoning_effort")
    if effort is not None:
        config["thinkingConfig"] = _thinking(str(effort), model)
    return config


def _thinking(effort: str, model: str) -> Json:
    """Gemini 2.x takes a token budget; later models take a level and cannot stop thinking."""
    if "gemini-2" in model and effort in THINKING_BUDGETS:
        return {"thinkingBudget": THINKING_BUDGETS[effort]}
    if "gemini-2" not in model and effort in THINKING_LEVELS:
        return {"thinkingLevel": THINKING_LEVELS[effort]}
    raise UnsupportedError(f"`reasoning_effort: {effort}` has no equivalent on {model}")


def _tools(body: Json, out: Json) -> None:
    tools = canonical.function_tools(body)
    if not tools:
        return
    declarations = []
    for tool in tools:
        declaration: Json = {"name": tool["name"]}
        if tool.get("description"):
            declaration["description"] = tool["description"]
        if tool.get("parameters"):
            declaration["parametersJsonSchema"] = tool["parameters"]
        declarations.append(declaration)
    out["tools"] = [{"functionDeclarations": declarations}]
    choice = body.get("tool_choice")
    config: Json
    if choice == "none":
        config = {"mode": "NONE"}
    elif choice == "required":
        config = {"mode": "ANY"}
    elif isinstance(choice, dict):
        config = {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}
    elif any(tool.get("strict") for tool in tools):
        config = {"mode": "VALIDATED"}  # calls, when made, are held to their schemas
    else:
        return
    out["toolConfig"] = {"functionCallingConfig": config}


# --- answer ----------------------------------------------------------------------------


def finish_reason(reason: str | None, called: bool) -> str:
    if reason in FILTERED:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if called else "stop"


def usage(meta: Json) -> Json:
    """Thoughts count as completion (reasoning) tokens and tool-use prompts as prompt, so
    the total matches ``totalTokenCount``. Counts of zero are left out by Google."""
    prompt = (meta.get("promptTokenCount") or 0) + (meta.get("toolUsePromptTokenCount") or 0)
    thoughts = meta.get("thoughtsTokenCount") or 0
    completion = (meta.get("candidatesTokenCount") or 0) + thoughts
    return canonical.usage(prompt, completion, meta.get("cachedContentTokenCount") or 0, thoughts)


def _choice(candidate: Json, position: int, rid: str) -> Json:
    index = candidate.get("index", position)
    texts: list[str] = []
    calls: list[Json] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if part.get("thought"):
            continue  # a thought summary, not the answer
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif "functionCall" in part:
            calls.append(_tool_call(part, rid, index, len(calls)))
    finish = finish_reason(candidate.get("finishReason"), bool(calls))
    msg = canonical.message("".join(texts) if texts or not calls else None, calls)
    choice = canonical.choice(index, msg, finish)
    if candidate.get("logprobsResult"):
        choice["logprobs"] = logprobs(candidate["logprobsResult"])
    return choice


def _tool_call(part: Json, rid: str, index: int, position: int) -> Json:
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


# --- stream ----------------------------------------------------------------------------


class GeminiStream:
    """``?alt=sse`` events, each a whole GenerateContentResponse with that step's parts.

    usageMetadata is cumulative, so only the last one is reported, once, at the end; a
    function call arrives whole, so its start and its arguments are two chunks at once.
    """

    def __init__(self, model: str) -> None:
        self._sse = SseParser()
        self._chunks = canonical.ChunkMaker("", model)
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}  # candidate index → tool calls so far
        self._usage: Json | None = None
        self.error: Failure | None = None

    def feed(self, data: bytes) -> list[Json]:
        return self._events(self._sse.feed(data))

    def close(self) -> list[Json]:
        out = self._events(self._sse.close())
        if self.error is not None:
            return out
        if not self._started or self._started - self._finished:
            self.error = Failure(502, "Gemini's stream ended before a finish reason")
            return out
        if self._usage is not None:
            out.append(self._chunks.usage(usage(self._usage)))
        return out

    def _events(self, events: list[SseEvent]) -> list[Json]:
        out: list[Json] = []
        for event in events:
            if self.error is None:
                out.extend(self._event(orjson.loads(event.data)))
        return out

    def _event(self, event: Json) -> list[Json]:
        if isinstance(event.get("error"), dict):
            error = event["error"]
            code = error.get("code")
            self.error = Failure(
                code if isinstance(code, int) and code >= 400 else 500,
                str(error.get("message") or "Gemini's stream failed"),
                str(error.get("status") or ""),
            )
            return []
        make = self._chunks
        make.id = make.id or str(event.get("responseId") or "")
        if event.get("usageMetadata"):
            self._usage = event["usageMetadata"]
        candidates = event.get("candidates") or []
        if not candidates and (event.get("promptFeedback") or {}).get("blockReason"):
            self._started.add(0)
            self._finished.add(0)
            return [make.role(), make.finish("content_filter")]
        out: list[Json] = []
        for candidate in candidates:
            out.extend(self._candidate(candidate))
        return out

    def _candidate(self, candidate: Json) -> list[Json]:
        make = self._chunks
        index = candidate.get("index", 0)
        out: list[Json] = []
        if index not in self._started:
            self._started.add(index)
            out.append(make.role(index))
        texts: list[str] = []
        scores = candidate.get("logprobsResult")  # this event's tokens: on its first text
        for part in (candidate.get("content") or {}).get("parts") or ():
            if part.get("thought"):
                continue
            if part.get("text"):
                texts.append(part["text"])
            elif "functionCall" in part:
                out += self._text(texts, index, scores) + self._call(part, index)
                scores = None if texts else scores
                texts = []
        out += self._text(texts, index, scores)
        reason = candidate.get("finishReason")
        if reason and index not in self._finished:
            self._finished.add(index)
            out.append(make.finish(finish_reason(reason, self._calls.get(index, 0) > 0), index))
        return out

    def _text(self, texts: list[str], index: int, scores: Json | None) -> list[Json]:
        if not texts:
            return []
        chunk = self._chunks.text("".join(texts), index)
        if scores:
            chunk["choices"][0]["logprobs"] = logprobs(scores)
        return [chunk]

    def _call(self, part: Json, index: int) -> list[Json]:
        make = self._chunks
        position = self._calls.get(index, 0)
        self._calls[index] = position + 1
        call = _tool_call(part, make.id, index, position)
        start = make.tool_start(position, call["id"], call["function"]["name"], index)
        if "extra_content" in call:
            start["choices"][0]["delta"]["tool_calls"][0]["extra_content"] = call["extra_content"]
        return [start, make.tool_arguments(position, call["function"]["arguments"], index)]


# --- embeddings ------------------------------------------------------------------------


def embedding_texts(body: Json) -> list[str]:
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise UnsupportedError("Gemini embeds text: send `input` as a string or strings")
    return texts


def encoding_is_base64(body: Json) -> bool:
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise UnsupportedError(f"`encoding_format: {fmt}` is not supported: use float or base64")
    return bool(fmt == "base64")


def embedding_list(
    vectors: list[list[float]], model: str, tokens: int, as_base64: bool = False
) -> Json:
    """OpenAI's embeddings answer; base64 is little-endian float32, as OpenAI sends it."""
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": (
                base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if as_base64 else v
            ),
        }
        for i, v in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
