"""Azure OpenAI: ``/openai/deployments/{deployment}/chat/completions`` and ``/embeddings``.

OpenAI's bodies, with Azure's differences: the deployment in the path decides the model (the
body's ``model`` is ignored; answers name the deployment), ``api-version`` is a required query
parameter (without it Azure answers 404 ``Resource not found``), the key comes in ``api-key``
(or ``Authorization: Bearer``), and answers carry ``prompt_filter_results`` and
``content_filter_results``. Validation errors keep OpenAI's shape; errors of the platform
(key, deployment, rate limit, 5xx) are Azure's ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.fake_upstream import embeddings, errors, wire
from infra.fake_upstream.chat import respond
from infra.fake_upstream.chat_request import Flavor
from infra.fake_upstream.errors import ApiError
from infra.fake_upstream.faults import Faults
from infra.fake_upstream.providers.common import dumps, guarded, require_key
from infra.fake_upstream.settings import known
from infra.fake_upstream.upstream import Check, Upstream

AZURE = Flavor(provider="azure", azure=True)
PLATFORM = "azure"  # ApiError.kind of errors worded by Azure itself, not by the model service
NO_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)
NO_DEPLOYMENT = (
    "The API deployment for this resource does not exist. If you created the deployment within "
    "the last 5 minutes, please wait a moment and try again."
)


def render(exc: ApiError) -> Response:
    if exc.kind == PLATFORM:
        body = {"error": {"code": exc.code or str(exc.status), "message": exc.message}}
        return Response(dumps(body), exc.status, exc.headers, "application/json")
    if exc.status == 429 and exc.message is None:
        retry = exc.headers.get("retry-after", "1")
        message = (
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
            "2024-10-21 have exceeded call rate limit of your current OpenAI S0 pricing tier. "
            f"Please retry after {retry} seconds. Please go here: "
            "https://aka.ms/oai/quotaincrease if you would like to further increase the "
            "default rate limit."
        )
        body = {"error": {"code": "429", "message": message}}
        return Response(dumps(body), 429, exc.headers, "application/json")
    content = wire.error(exc.status, exc.message, exc.param, exc.code)
    return Response(content, exc.status, exc.headers, "application/json")


def _check(upstream: Upstream) -> Check:
    def check(request: Request) -> None:
        if not request.query_params.get("api-version"):
            raise ApiError(404, "Resource not found", code="404", kind=PLATFORM)
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        key = request.headers.get("api-key") or bearer
        if not require_key(key, upstream.settings.api_key):
            raise ApiError(401, NO_KEY, code="401", kind=PLATFORM)
        deployment = request.path_params["deployment"]
        if not known(deployment, upstream.settings.azure_deployments):
            raise ApiError(404, NO_DEPLOYMENT, code="DeploymentNotFound", kind=PLATFORM)

    return check


async def _admitted(
    upstream: Upstream, request: Request
) -> tuple[Faults, dict[str, str], float, dict[str, Any], str]:
    deployment = request.path_params["deployment"]
    faults, headers, started = await upstream.admit(request, "azure", _check(upstream), deployment)
    body = await upstream.parsed(request)
    if not isinstance(body, dict):
        raise ApiError(400, errors.JSON_HINT, headers=headers)
    return faults, headers, started, body, deployment


async def chat(upstream: Upstream, request: Request) -> Response:
    faults, headers, started, body, deployment = await _admitted(upstream, request)
    return await respond(
        upstream, faults, headers=headers, started=started, body=body, model=deployment,
        flavor=AZURE,
    )  # fmt: skip


async def embed(upstream: Upstream, request: Request) -> Response:
    _, headers, _, body, deployment = await _admitted(upstream, request)
    return embeddings.respond(upstream, headers, body, deployment, "azure")


def routes(upstream: Upstream) -> list[Route]:
    base = "/openai/deployments/{deployment}"
    return [
        Route(f"{base}/chat/completions", guarded(upstream, chat, render), methods=["POST"]),
        Route(f"{base}/embeddings", guarded(upstream, embed, render), methods=["POST"]),
    ]
