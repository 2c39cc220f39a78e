"""The one table of provider routes beside OpenAI's ``/v1``: path → handler, per provider."""

from __future__ import annotations

from starlette.routing import BaseRoute

from infra.fake_upstream.providers import anthropic, azure, bedrock, cohere, gemini, mistral
from infra.fake_upstream.upstream import Upstream


def routes(upstream: Upstream) -> list[BaseRoute]:
    return [
        *anthropic.routes(upstream),
        *azure.routes(upstream),
        *mistral.routes(upstream),
        *gemini.routes(upstream),
        *bedrock.routes(upstream),
        *cohere.routes(upstream),
    ]
