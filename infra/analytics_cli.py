"""``tollgate cost|tokens|latency|top-spenders|query``: analytics over the rollups.

Every command runs through ``infra.sql.run_sql`` (the running sink's read-only endpoint,
chDB opened directly when no sink runs, or the ClickHouse server), prints a ``rich`` table,
or JSON (one object per row; money as exact decimal strings) with ``--json``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import orjson

from schemas.config import TollgateConfig

Loader = Callable[[Path | None], TollgateConfig]

_config = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="YAML config (default: $TOLLGATE_CONFIG, else ./tollgate.yaml).",
)
_json = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
_window = click.option(
    "--window", default="24h", show_default=True, help="How far back: 30m, 24h, 7d, 2w."
)
_tenant = click.option("--tenant", default=None, help="Only this tenant.")


def _usage_command(main: click.Group, load: Loader, name: str, help_text: str) -> None:
    """``tollgate cost`` and ``tollgate tokens``: the same options over the usage rollups."""

    @main.command(name, help=help_text)
    @click.option(
        "--by",
        "by",
        type=click.Choice(["tenant", "model", "provider", "day"]),
        default="tenant",
        show_default=True,
    )
    @_window
    @_tenant
    @_json
    @_config
    def command(
        by: str, window: str, tenant: str | None, as_json: bool, config_path: Path | None
    ) -> None:
        from sinks import reports

        report = getattr(reports, name)
        _show(load(config_path), lambda: report(by, _window_of(window), tenant), as_json)


def register(main: click.Group, load: Loader) -> None:
    """Add the analytics commands to the ``tollgate`` group."""
    _usage_command(
        main,
        load,
        "cost",
        "Spend, requests and cost per request, grouped by tenant, model, provider or day.",
    )
    _usage_command(
        main,
        load,
        "tokens",
        "Prompt, completion, cached and reasoning tokens by the same groupings.",
    )

    @main.command()
    @click.option("--percentiles", default="50,95,99", show_default=True)
    @click.option(
        "--by", "by", type=click.Choice(["provider", "model", "tenant"]), default="provider"
    )
    @_window
    @_tenant
    @_json
    @_config
    def latency(
        *,
        percentiles: str,
        by: str,
        window: str,
        tenant: str | None,
        as_json: bool,
        config_path: Path | None,
    ):
        """Latency and time-to-first-token percentiles, responses and error rate."""
        from sinks import reports

        def query() -> reports.Query:
            levels = reports.parse_percentiles(percentiles)
            return reports.latency(levels, by, _window_of(window), tenant)

        _show(load(config_path), query, as_json)

    @main.command("top-spenders")
    @click.option("--by", "by", type=click.Choice(["key", "user", "team", "tenant"]), default="key")
    @click.option("--limit", default=10, show_default=True, type=int)
    @_window
    @_tenant
    @_json
    @_config
    def top_spenders(
        *,
        by: str,
        limit: int,
        window: str,
        tenant: str | None,
        as_json: bool,
        config_path: Path | None,
    ):
        """Who spent the most: keys, users, teams or tenants."""
        from sinks import reports

        _show(
            load(config_path),
            lambda: reports.top_spenders(by, _window_of(window), limit, tenant),
            as_json,
        )

    @main.command("query")
    @click.argument("name", required=False)
    @click.option(
        "--param", "params", multiple=True, help="name=value for the query's {name:Type}."
    )
    @click.option("--list", "list_them", is_flag=True, help="List the ready-made queries.")
    @_json
    @_config
    def query(
        *,
        name: str | None,
        params: tuple[str, ...],
        list_them: bool,
        as_json: bool,
        config_path: Path | None,
    ):
        """Run a ready-made query (sinks/queries/NAME.sql); --list says what each answers."""
        from sinks.reports import ready_queries

        ready = ready_queries()
        if list_them or name is None:
            for item in ready.values():
                wants = f"  (--param {', '.join(item.params)})" if item.params else ""
                click.echo(f"{item.name:28} {item.question}{wants}")
            return
        if name not in ready:
            raise click.ClickException(f"no query {name!r}; known: {', '.join(ready)}")
        chosen = ready[name]
        values = dict(_param(p) for p in params)
        missing = [p for p in chosen.params if p not in values]
        if missing:
            raise click.ClickException(
                f"{name} needs --param {', '.join(f'{m}=...' for m in missing)}"
            )
        _show(load(config_path), lambda: (chosen.sql, values), as_json)


def _window_of(text: str) -> timedelta:
    from sinks.reports import parse_window

    return parse_window(text)


def _param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise click.ClickException(f"--param {text!r}: write it as name=value")
    return name, value


def _show(
    config: TollgateConfig, build: Callable[[], tuple[str, dict[str, Any]]], as_json: bool
) -> None:
    from infra.sql import QueryError, run_sql
    from sinks.reports import ReportError

    try:
        sql, params = build()
        result = run_sql(config, sql, params)
    except (ReportError, QueryError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        rows = [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2, default=str).decode())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*result["columns"])
    for row in result["rows"]:
        table.add_row(*(_cell(v) for v in row))
    Console().print(table)


def _cell(value: Any) -> str:
    """Money reads as 0.00001665, not 1.665E-5 or 0E-12 (JSON output keeps it exact)."""
    if value is None:
        return ""
    if isinstance(value, Decimal | str) and not isinstance(value, bool):
        try:
            number = Decimal(value)
        except ArithmeticError:
            return str(value)
        if isinstance(value, Decimal) or "E" in value.upper() or "." in value:
            return format(number.normalize(), "f") if number.is_finite() else str(value)
    return str(value)
