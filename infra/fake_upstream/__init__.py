"""A fake model provider on loopback that speaks OpenAI's chat-completions wire protocol.

Real HTTP (uvicorn, uvloop, httptools), real SSE framing, OpenAI's error bodies and rate-limit
headers, deterministic text and exact usage (counted with ``schemas.tokens``), so tests, the
demo and benchmarks can compare what it served (``GET /_fake/stats``) with what Tollgate
recorded. Request headers ``x-fake-*`` inject faults (see ``faults``).

Entry points: ``create_app`` (app), ``serve``/``run``/``BackgroundFakeUpstream`` (server),
``python -m infra.fake_upstream --help``.
"""
