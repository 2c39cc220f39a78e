"""A fake model provider on loopback that speaks seven providers' real wire formats.

Real HTTP (uvicorn, uvloop, httptools), real SSE and AWS event-stream framing, each
provider's own auth headers, error bodies and rate-limit answers, deterministic text and
exact usage (counted with ``schemas.tokens``), so tests, the demo and benchmarks can compare
what it served (``GET /_fake/stats``) with what Tollgate recorded.

Routes, all on one port:

- OpenAI: ``POST /v1/chat/completions`` (tools, JSON output, logprobs, images, SSE),
  ``POST /v1/embeddings``, ``GET /v1/models[/{id}]``
- Azure OpenAI: ``POST /openai/deployments/{deployment}/chat/completions?api-version=…``,
  ``POST /openai/deployments/{deployment}/embeddings?api-version=…``
- Anthropic: ``POST /v1/messages``, ``POST /v1/messages/count_tokens``
- Gemini: ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent[?alt=sse]``,
  ``:countTokens``, ``:embedContent``, ``:batchEmbedContents``
- Bedrock: ``POST /model/{modelId}/converse``, ``POST /model/{modelId}/converse-stream``
- Cohere: ``POST /v2/chat``, ``POST /v2/embed``
- Mistral: ``POST /mistral/v1/chat/completions``, ``POST /mistral/v1/embeddings``,
  ``GET /mistral/v1/models``
- Control: ``GET /_fake/stats``, ``POST /_fake/reset``, ``POST|GET|DELETE /_fake/faults``,
  ``GET /_fake/last?provider=…``, ``GET /health``

Request headers ``x-fake-*`` inject faults per request (``faults``); ``POST /_fake/faults``
queues them for tests that go through a gateway (``scripted``). One provider per module
under ``providers/``, sharing ``providers.reply`` (what the model says) and
``providers.common`` (faults, pacing, stats).

Entry points: ``create_app`` (app), ``serve``/``run``/``BackgroundFakeUpstream`` (server),
``python -m infra.fake_upstream --help``.
"""
