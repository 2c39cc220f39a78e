"""The ``tollgate`` command: run the stack or one stage, manage Kafka, query ClickHouse."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from infra.analytics_cli import register as register_analytics
from infra.replay.cli import register as register_replay
from schemas.config import ConfigError, TollgateConfig, default_config_path, load_config

if TYPE_CHECKING:
    from processors.app import Role

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")
config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="YAML config (default: $TOLLGATE_CONFIG, else ./tollgate.yaml).",
)


def _load(config_path: Path | None, demo: bool = False) -> tuple[TollgateConfig, Path | None]:
    path = config_path or default_config_path()
    if path is None and demo:
        path = DEMO_CONFIG
    try:
        return load_config(path), path
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group()
def main() -> None:
    """Tollgate: an event-sourced LLM gateway."""


@main.command()
@config_option
@click.option("--no-upstream", is_flag=True, help="Do not start the fake upstream.")
def up(config_path: Path | None, no_upstream: bool) -> None:
    """Run the whole stack in the foreground; Ctrl-C (or `tollgate down`) stops it."""
    from infra.stack import Stack, StackError

    config, path = _load(config_path, demo=True)
    stack = Stack(config, path, with_upstream=not no_upstream)
    try:
        stack.up()
        _print_ready(config, path)
        stack.wait()
    except (StackError, RuntimeError) as exc:
        click.echo(f"error: {exc}", err=True)
        stack.down()
        sys.exit(1)
    stack.down()


def _print_ready(config: TollgateConfig, path: Path | None) -> None:
    url = f"http://{config.ingress.host}:{config.ingress.port}/v1"
    key = "tg-demo-key" if path == DEMO_CONFIG else "<your key>"
    click.echo(f"""
Tollgate is up (config: {path or "defaults"}).
  OpenAI-compatible endpoint: {url}
  try:   curl -s {url}/chat/completions -H 'Authorization: Bearer {key}' \\
           -H 'content-type: application/json' \\
           -d '{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"Hello"}}]}}'
  query: tollgate sql "SELECT tenant, sum(cost) AS usd, sum(total_tokens) AS tokens
                       FROM usage FINAL GROUP BY tenant"
  logs:  {config.run_dir}/
Press Ctrl-C or run `tollgate down` to stop.
""")


@main.command()
@config_option
def down(config_path: Path | None) -> None:
    """Stop a running `tollgate up` (and the embedded Kafka)."""
    from infra.stack import stop_running_stack

    config, _ = _load(config_path, demo=True)
    if not stop_running_stack(config):
        click.echo("nothing was running")


@main.command()
@click.argument("sql")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def sql(sql: str, config_path: Path | None, as_json: bool) -> None:
    """Run a read-only SQL query against the audit and analytics tables."""
    from infra.sql import QueryError, run_sql

    config, _ = _load(config_path, demo=True)
    try:
        result = run_sql(config, sql)
    except QueryError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        _print_table(result)


def _print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*result["columns"])
    for row in result["rows"]:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console().print(table)


@main.command()
@config_option
def migrate(config_path: Path | None) -> None:
    """Apply pending ClickHouse migrations (the sink also does this at start)."""
    from sinks.clickhouse.client import open_client
    from sinks.clickhouse.migrate import migrate as apply

    config, _ = _load(config_path, demo=True)
    client = open_client(config)
    try:
        applied = apply(client, config.clickhouse.database)
    finally:
        client.close()
    click.echo(f"applied: {', '.join(applied)}" if applied else "up to date")


@main.group()
def kafka() -> None:
    """The embedded Apache Kafka broker."""


@kafka.command("fetch")
def kafka_fetch() -> None:
    """Fetch the broker jars from Maven Central into the cache (once)."""
    from infra.kafka.jars import ensure_jars

    click.echo(ensure_jars())


@kafka.command("start")
@config_option
def kafka_start(config_path: Path | None) -> None:
    """Start the broker in the background (its data survives restarts)."""
    from infra.stack import local_kafka
    from infra.topics import all_topics, ensure_topics

    config, _ = _load(config_path, demo=True)
    local_kafka(config).start()
    asyncio.run(ensure_topics(config.kafka.bootstrap_servers, all_topics(config)))


@kafka.command("stop")
@config_option
def kafka_stop(config_path: Path | None) -> None:
    """Stop the background broker."""
    from infra.stack import local_kafka

    config, _ = _load(config_path, demo=True)
    if not local_kafka(config).stop():
        click.echo("Kafka was not running")


@main.command()
@config_option
def ingress(config_path: Path | None) -> None:
    """Run the ingress (HTTP) in the foreground."""
    from ingress.main import run_ingress

    _logging("WARNING")
    run_ingress(*_load(config_path, demo=True))


loglevel_option = click.option(
    "--loglevel", default="warn", type=click.Choice(["crit", "error", "warn", "info", "debug"])
)


@main.command()
@config_option
@loglevel_option
def worker(config_path: Path | None, loglevel: str) -> None:
    """Run the stream processors (a Faust worker) in the foreground."""
    _run_worker(config_path, loglevel, "metering")


@main.command("guard-worker")
@config_option
@loglevel_option
def guard_worker(config_path: Path | None, loglevel: str) -> None:
    """Run the stream guards (Presidio over the request log) in the foreground."""
    _run_worker(config_path, loglevel, "guards")


def _run_worker(config_path: Path | None, loglevel: str, role: Role) -> None:
    from infra.topics import all_topics, ensure_topics
    from processors.main import run_worker

    config = _load(config_path, demo=True)[0]
    asyncio.run(ensure_topics(config.kafka.bootstrap_servers, all_topics(config)))
    run_worker(config, loglevel, role)


@main.command()
@config_option
def sink(config_path: Path | None) -> None:
    """Run the ClickHouse sink (and its query endpoint) in the foreground."""
    from sinks.main import run_sink

    _logging("INFO")
    asyncio.run(run_sink(_load(config_path, demo=True)[0]))


@main.command()
@config_option
def upstream(config_path: Path | None) -> None:
    """Run the fake upstream on fake_upstream.host:port (loopback only)."""
    from infra.fake_upstream.server import run
    from infra.fake_upstream.settings import FakeUpstreamSettings

    fake = _load(config_path, demo=True)[0].fake_upstream
    api_key = fake.api_key.get_secret_value() if fake.api_key else None
    run(FakeUpstreamSettings(api_key=api_key), host=fake.host, port=fake.port)


@main.command("config")
@click.argument("action", type=click.Choice(["validate", "show"]))
@config_option
def config_cmd(action: str, config_path: Path | None) -> None:
    """Validate the config, or show it with defaults filled in (secrets hidden)."""
    config, path = _load(config_path)
    if action == "validate":
        click.echo(f"{path or 'defaults'}: ok")
    else:
        click.echo(
            orjson.dumps(config.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode()
        )


register_analytics(main, lambda path: _load(path, demo=True)[0])
register_replay(main, lambda path: _load(path, demo=True)[0])

if __name__ == "__main__":
    main()
