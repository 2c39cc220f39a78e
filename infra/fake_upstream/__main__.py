"""``python -m infra.fake_upstream``: the fake upstream, on loopback, in the foreground."""

from __future__ import annotations

import argparse

from infra.fake_upstream.server import DEFAULT_HOST, DEFAULT_PORT, run
from infra.fake_upstream.settings import DEFAULT_MODELS, FakeUpstreamSettings

EPILOG = """\
routes (one port):
  OpenAI     POST /v1/chat/completions, /v1/embeddings; GET /v1/models
  Azure      POST /openai/deployments/{deployment}/chat/completions?api-version=...
             POST /openai/deployments/{deployment}/embeddings?api-version=...
  Anthropic  POST /v1/messages, /v1/messages/count_tokens
  Gemini     POST /v1beta/models/{model}:generateContent, :streamGenerateContent?alt=sse,
                  :countTokens, :embedContent, :batchEmbedContents
  Bedrock    POST /model/{modelId}/converse, /model/{modelId}/converse-stream (SigV4)
  Cohere     POST /v2/chat, /v2/embed
  Mistral    POST /mistral/v1/chat/completions, /mistral/v1/embeddings; GET /mistral/v1/models

per-request faults (request headers):
  x-fake-status: 429|500|502|503|400|...  answer with that status in the provider's error body
  x-fake-retry-after: S                  Retry-After seconds on a 429 (default 1)
  x-fake-ttft-ms: MS                     delay before the first byte
  x-fake-tokens-per-second: R            pace of generated tokens
  x-fake-omit-usage: 1                   no usage object (OpenAI JSON or stream)
  x-fake-disconnect-after-tokens: N      stream N content tokens, then drop the connection
  x-fake-hang: 1                         never answer

control routes:
  GET /_fake/stats                       what was served, per model and provider
  POST /_fake/reset                      zero stats, drop queued faults and recorded requests
  POST /_fake/faults {"model", "provider", "status", "count", "retry_after",
                      "latency_ms", "drop", "after_chunks"}   queue faults for next requests
  GET|DELETE /_fake/faults               list or drop queued faults
  GET /_fake/last?provider=NAME          last request received (auth header names only)
  GET /health
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m infra.fake_upstream",
        description="A fake model provider speaking OpenAI, Azure OpenAI, Anthropic, Gemini, "
        "Bedrock, Cohere and Mistral wire formats: deterministic text, exact usage "
        "(schemas.tokens), real streams, injectable faults.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--ttft-ms", type=float, default=0.0, help="delay before the first byte (default: 0)"
    )
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        default=0.0,
        help="pace of generated tokens, streamed or not (default: 0 = unpaced)",
    )
    parser.add_argument(
        "--default-completion-tokens",
        type=int,
        default=24,
        help="completion length without max_tokens (default: %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="accept only this key, in each provider's own auth header (default: any)",
    )
    parser.add_argument(
        "--rpm-limit",
        type=int,
        default=0,
        help="429 past this many requests in a sliding minute (default: 0 = unlimited)",
    )
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help="comma-separated models it answers for; others get 404 (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = FakeUpstreamSettings(
        ttft_ms=args.ttft_ms,
        tokens_per_second=args.tokens_per_second,
        default_completion_tokens=args.default_completion_tokens,
        api_key=args.api_key,
        models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
        rpm_limit=args.rpm_limit,
    )
    run(settings, args.host, args.port)


if __name__ == "__main__":
    main()
