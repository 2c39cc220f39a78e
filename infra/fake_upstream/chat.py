"""``POST /v1/chat/completions``: validation, deterministic choices, JSON or SSE answers.

``respond`` is shared with Azure (deployment in the path, content-filter annotations) and
Mistral (usage always in the last chunk, a leaner body); a ``Flavor`` says which.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from infra.fake_upstream import wire
from infra.fake_upstream.chat_request import OPENAI, Answer, Flavor, answer
from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.faults import DropConnection, Faults
from infra.fake_upstream.providers import openai_wire as ow
from infra.fake_upstream.providers.common import before_answer, send_json, send_stream
from infra.fake_upstream.text import pieces
from infra.fake_upstream.upstream import Upstream


async def chat_completions(upstream: Upstream, request: Request) -> Response:
    faults, headers, started = await upstream.admit(request)
    body, model = await upstream.body(request, headers)
    return await respond(
        upstream, faults, headers=headers, started=started, body=body, model=model, flavor=OPENAI
    )


async def respond(
    upstream: Upstream,
    faults: Faults,
    *,
    headers: dict[str, str],
    started: float,
    body: dict[str, Any],
    model: str,
    flavor: Flavor,
) -> Response:
    try:
        result = answer(body, model, upstream.settings.default_completion_tokens, flavor)
    except ApiError as exc:
        exc.headers = headers
        raise
    use = None if faults.omit_usage else wire.usage(result.prompt_tokens, result.completion_tokens)
    if use is not None and flavor.lean:
        use = {k: use[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    stream = body.get("stream") is True
    await before_answer(upstream, faults, result.longest, stream)
    if flavor.provider != "mistral":
        headers["openai-processing-ms"] = str(round((time.perf_counter() - started) * 1000))

    def done() -> None:
        upstream.stats.completed(
            model, result.prompt_tokens, result.completion_tokens, flavor.provider
        )

    if stream:
        options = body.get("stream_options")
        include = isinstance(options, dict) and options.get("include_usage") is True
        usage_field = use is not None and (include or flavor.lean)
        limit = faults.disconnect_after_tokens
        events = _events(upstream, result, (use, usage_field), flavor, limit)
        unlimited = dataclasses.replace(faults, disconnect_after_tokens=None)
        return send_stream(upstream, unlimited, events, headers, done)
    top = result.top_logprobs
    choices = [ow.choice(i, model, r, top, flavor.lean) for i, r in enumerate(result.replies)]
    content = wire.chat_completion(wire.completion_id(), model, choices, use, _extras(flavor))
    return send_json(upstream, faults, content, headers, done)


def _extras(flavor: Flavor) -> wire.Extras:
    if flavor.azure:
        return wire.Extras(
            prompt_filters=[{"prompt_index": 0, "content_filter_results": wire.CONTENT_FILTERS}]
        )
    return wire.Extras(lean=flavor.lean)


async def _events(
    upstream: Upstream,
    result: Answer,
    usage: tuple[dict[str, Any] | None, bool],
    flavor: Flavor,
    limit: int | None,
) -> AsyncIterator[bytes]:
    """OpenAI's SSE sequence: role, one token per chunk, finish, [usage], [DONE].

    ``limit`` (``x-fake-disconnect-after-tokens``) drops the connection after that many
    content tokens.
    """
    use, usage_field = usage
    sent = 0

    def drop_if_spent() -> None:
        if limit is not None and sent >= limit:
            upstream.stats.disconnects += 1
            raise DropConnection("x-fake-disconnect-after-tokens")

    chunks = wire.Chunks(result.model, usage_field and not flavor.lean, _extras(flavor))
    if flavor.azure:
        yield chunks.prompt_filters()
    for index, answered in enumerate(result.replies):
        if answered.tool is not None:
            for delta in ow.tool_deltas(index, answered.tool, flavor.lean):
                yield chunks.event([delta])
        else:
            yield chunks.event([wire.role_delta(index)])
            for piece in pieces(result.model, answered.text):
                drop_if_spent()
                yield chunks.event([wire.content_delta(index, piece, result.top_logprobs)])
                sent += 1
        if index == len(result.replies) - 1:
            drop_if_spent()
        last = flavor.lean and index == len(result.replies) - 1
        yield chunks.event(
            [wire.finish_delta(index, ow.FINISH[answered.finish])],
            use if last and usage_field else None,
            last and usage_field,
        )
    if usage_field and not flavor.lean:
        yield chunks.event([], use)
    yield wire.DONE
