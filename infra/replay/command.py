"""``tollgate replay run`` end to end: select, journal, dry run or send, summarize."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import click

from infra.replay import clickhouse_source, kafka_source
from infra.replay.journal import Journal, SpecMismatch
from infra.replay.pricing import estimate
from infra.replay.records import Recorded
from infra.replay.runner import KafkaResults, Outcome, Replay, RunOptions, pending
from infra.replay.spec import ExperimentSpec
from schemas.config import TollgateConfig
from schemas.pricing import build_price_book


async def select(config: TollgateConfig, spec: ExperimentSpec) -> tuple[str, list[Recorded]]:
    """The recorded requests, from Kafka while it holds the range, else ClickHouse."""
    source = spec.selection.source
    if source in ("auto", "kafka"):
        try:
            found = await kafka_source.load(
                config.kafka.bootstrap_servers, spec.selection, strict=source == "auto"
            )
            return "kafka", found
        except kafka_source.RetentionPassed as exc:
            click.echo(f"{exc}; reading the ClickHouse audit log instead")
    return "clickhouse", await asyncio.to_thread(clickhouse_source.load, config, spec.selection)


def run_replay(
    config: TollgateConfig,
    spec: ExperimentSpec,
    options: dict[str, Any],
    on_stop: Callable[[asyncio.Event], None],
) -> None:
    try:
        journal = Journal.open(config.home, spec)
    except SpecMismatch as exc:
        raise click.ClickException(str(exc)) from exc
    outcome = asyncio.run(_run(config, spec, journal, options, on_stop))
    if outcome is None:
        return
    left = "; run the same command again to resume" if outcome.stopped else ""
    click.echo(
        f"replay {spec.name}: {outcome.sent} sent ({outcome.failed} failed), "
        f"{outcome.skipped} skipped{left}"
    )
    for row in journal.summary():
        for reason, count in row["skipped"].items():
            click.echo(f"  {row['variant']}: {count} skipped: {reason}")
        if row["in_doubt"]:
            click.echo(f"  {row['variant']}: {row['in_doubt']} in doubt (in flight at a stop)")


async def _run(
    config: TollgateConfig,
    spec: ExperimentSpec,
    journal: Journal,
    options: dict[str, Any],
    on_stop: Callable[[asyncio.Event], None],
) -> Outcome | None:
    source, records = await select(config, spec)
    todo, skip = pending(spec, journal, records)
    click.echo(
        f"{len(records)} recorded requests selected from {source}; "
        f"{len(todo)} calls to send, {len(skip)} to report skipped"
    )
    if options["dry_run"]:
        _print_dry_run(config, spec, todo)
        return None
    url = options["gateway"] or f"http://{config.ingress.host}:{config.ingress.port}/v1"
    run = RunOptions(
        gateway_url=url,
        key=options["api_key"],
        rps=options["rps"],
        concurrency=options["concurrency"],
        max_requests=options["max_requests"],
    )
    from rich.progress import Progress

    async with KafkaResults(config.kafka.bootstrap_servers) as publish:
        replay = Replay(spec, journal, run, publish)
        on_stop(replay.stop)
        with Progress() as bar:
            task = bar.add_task(f"replay {spec.name}", total=len(todo))
            return await replay.run(records, lambda n: bar.advance(task, n))


def _print_dry_run(config: TollgateConfig, spec: ExperimentSpec, todo: list[Any]) -> None:
    prices = build_price_book(config.prices())
    by_variant: dict[str, list[Recorded]] = {v.name: [] for v in spec.variants}
    for variant, record in todo:
        by_variant[variant.name].append(record)
    total = Decimal(0)
    for variant in spec.variants:
        one = ExperimentSpec(name=spec.name, variants=(variant,), selection=spec.selection)
        [est] = estimate(one, by_variant[variant.name], prices, config.admission.default_max_tokens)
        total += est.usd
        unpriced = f", {est.unpriced} without a price" if est.unpriced else ""
        click.echo(
            f"  {est.variant} ({est.model}): {est.requests} requests, ~{est.prompt_tokens} "
            f"prompt + ~{est.completion_tokens} completion tokens, ~${est.usd:.6f}{unpriced}"
        )
    click.echo(f"  total ~${total:.6f} (nothing sent)")
