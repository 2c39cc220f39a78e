"""Runs the ClickHouse sink and its query endpoint in one process (``tollgate sink``)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from schemas.config import TollgateConfig
from sinks.alerts.consumer import AlertConsumer
from sinks.clickhouse.client import open_client
from sinks.clickhouse.metrics import SinkMetrics
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.writer import ClickHouseSink
from sinks.query_server import create_query_app

log = logging.getLogger("tollgate.sink")


async def run_sink(config: TollgateConfig) -> None:
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    client = open_client(config)
    # chDB is driven from one thread: inserts and queries never run concurrently.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
    loop = asyncio.get_running_loop()
    applied = await loop.run_in_executor(executor, migrate, client, config.clickhouse.database)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics = SinkMetrics()
    sink = ClickHouseSink(config, client, executor, metrics)
    runner = web.AppRunner(
        create_query_app(client, executor, lambda: dataclasses.asdict(sink.stats), metrics.registry)
    )
    await runner.setup()
    await web.TCPSite(runner, config.sink.query_host, config.sink.query_port).start()
    log.info("query endpoint on http://%s:%d/query", config.sink.query_host, config.sink.query_port)
    alerts: asyncio.Task[None] | None = None
    if config.alerts.webhooks:
        alerts = asyncio.create_task(AlertConsumer(config).run(stop), name="alerts")
        # if delivery dies, the whole sink stops (and says why) rather than go on silently
        alerts.add_done_callback(lambda _: stop.set())
    try:
        await sink.run(stop)
    finally:
        stop.set()
        await runner.cleanup()
        await loop.run_in_executor(executor, client.close)
        executor.shutdown()
        if alerts is not None:
            await alerts  # re-raises a crash of the delivery, so the sink exits with it
