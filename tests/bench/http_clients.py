"""Which HTTP client should the ingress use upstream? Its own pool vs aiohttp vs httpx.

    .venv/bin/python -m tests.bench.http_clients [--seconds 5] [--concurrency 16]

All three send the same chat request to the fake upstream (its own process) from this
process, with a pooled keep-alive connection per lane, and we count completed requests and
the client-side CPU time per request: the client's CPU is what it costs the gateway. The
loop is uvloop's, as in the ingress.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import orjson
import uvloop

from infra.processes import terminate_group, wait_port
from ingress.http1 import Pool
from tests.harness import free_port

BODY = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Benchmark me, briefly."}],
    }
)
HEADERS = {"content-type": "application/json", "authorization": "Bearer bench"}


async def _drive(
    send: Callable[[], Awaitable[None]], concurrency: int, seconds: float
) -> tuple[float, float]:
    for _ in range(3):
        await asyncio.gather(*(send() for _ in range(concurrency)))
    done = 0
    stop_at = time.perf_counter() + seconds
    cpu = time.process_time()

    async def lane() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await send()
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    return done / elapsed, (time.process_time() - cpu) / done * 1e6


async def measure(url: str, concurrency: int, seconds: float) -> dict[str, dict[str, float]]:
    results = {}
    pool = Pool(limit=concurrency, connect_timeout_s=5)

    async def with_pool() -> None:
        response = await pool.request("POST", url, HEADERS, BODY)
        try:
            await response.read()
        finally:
            response.release()

    rate, cpu_us = await _drive(with_pool, concurrency, seconds)
    pool.close()
    results["ingress.http1"] = {
        "req_per_s": round(rate, 1),
        "client_cpu_us_per_req": round(cpu_us, 1),
    }
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def with_aiohttp() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                await response.read()

        rate, cpu_us = await _drive(with_aiohttp, concurrency, seconds)
        results["aiohttp"] = {
            "req_per_s": round(rate, 1),
            "client_cpu_us_per_req": round(cpu_us, 1),
        }
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def with_httpx() -> None:
            response = await client.post(url, content=BODY, headers=HEADERS)
            response.read()

        rate, cpu_us = await _drive(with_httpx, concurrency, seconds)
        results["httpx"] = {"req_per_s": round(rate, 1), "client_cpu_us_per_req": round(cpu_us, 1)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "infra.fake_upstream", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_port("127.0.0.1", port, "the fake upstream", 30)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        print(
            orjson.dumps(
                uvloop.run(measure(url, args.concurrency, args.seconds)),
                option=orjson.OPT_INDENT_2,
            ).decode()
        )
    finally:
        terminate_group(upstream.pid, 10)


if __name__ == "__main__":
    main()
